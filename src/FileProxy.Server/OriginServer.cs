using System.Net;
using FileProxy.Protocol.Server;
using Serilog;

namespace FileProxy.Server;

/// <summary>The origin: a <see cref="ProtocolServer"/> over a <see cref="DirectorySource"/> or an <see cref="S3Source"/>.</summary>
public static class OriginServer
{
    public const int DefaultPort = 5010;

    public static ProtocolServer Create(string root, ProtocolServerOptions options, ILogger? log = null)
    {
        var source = new DirectorySource(root, log);
        var server = new ProtocolServer(source, options, log);
        (log ?? Log.Logger).Information("Serving {Root}", source.Root);
        return server;
    }

    /// <summary>An origin over an S3 bucket; the caller owns <paramref name="source"/> and disposes it after the server.</summary>
    public static ProtocolServer Create(S3Source source, ProtocolServerOptions options, ILogger? log = null)
    {
        var server = new ProtocolServer(source, options, log);
        (log ?? Log.Logger).Information("Serving bucket {Bucket} at {Endpoint} (key prefix '{Prefix}'); digests kept in {DigestIndex}",
            source.Bucket, source.Endpoint, source.Prefix, source.DigestIndexPath);
        return server;
    }

    public static ProtocolServerOptions Loopback(int port = 0) => new() { EndPoint = new IPEndPoint(IPAddress.Loopback, port) };
}
