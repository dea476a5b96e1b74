using Amazon.Runtime;

namespace FileProxy.Server;

/// <summary>Where an <see cref="S3Source"/> finds its objects and keeps its digests.</summary>
public sealed record S3SourceOptions
{
    /// <summary>The object store's URL (path-style addressing: http://127.0.0.1:7480 for a local Ceph RGW).</summary>
    public required Uri Endpoint { get; init; }

    public required string Bucket { get; init; }

    /// <summary>Key prefix: name N is served from object PREFIX/N. Empty for the whole bucket.</summary>
    public string Prefix { get; init; } = "";

    public required AWSCredentials Credentials { get; init; }

    /// <summary>The file that keeps computed digests across restarts (<see cref="S3DigestIndex"/>).</summary>
    public required string DigestIndexPath { get; init; }

    /// <summary>Region used in request signatures; RGW accepts any, AWS wants the bucket's.</summary>
    public string Region { get; init; } = "us-east-1";

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the object store may take to start answering a request.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long reading a whole object to compute its digest may take.</summary>
    public TimeSpan HashTimeout { get; init; } = TimeSpan.FromHours(1);
}
