using System.Net;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using FileProxy.Server;
using Serilog;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>An origin over an S3 bucket of the test Ceph RGW, in this process on loopback port 0, with its digest index
/// in a temporary directory; optionally a proxy in front of it.</summary>
public sealed class S3Origin : IAsyncDisposable
{
    private readonly CephFixture _ceph;
    private readonly ILogger _log;
    private readonly ITestOutputHelper _output;
    private readonly string _prefix;
    private int _port;

    private S3Origin(CephFixture ceph, ITestOutputHelper output, string bucket, string prefix)
    {
        _ceph = ceph;
        _output = output;
        _log = TestLog.For(output, "origin");
        Bucket = bucket;
        _prefix = prefix;
    }

    public string Bucket { get; }

    public TempDirectory State { get; } = new("fileproxy-s3-state");

    public S3Source Source { get; private set; } = null!;

    public ProtocolServer Server { get; private set; } = null!;

    public ProtocolServer? Proxy { get; private set; }

    private CacheSource? _cache;
    private TempDirectory? _cacheDirectory;

    public static async Task<S3Origin> StartAsync(CephFixture ceph, ITestOutputHelper output, CancellationToken cancellationToken,
        string prefix = "")
    {
        var origin = new S3Origin(ceph, output, await ceph.CreateBucketAsync(cancellationToken), prefix);
        origin.Start();
        return origin;
    }

    /// <summary>Starts the server (again, on the port it had), with a new source over the same digest index.</summary>
    public void Start()
    {
        Source = new S3Source(new S3SourceOptions
        {
            Endpoint = _ceph.Endpoint,
            Bucket = Bucket,
            Prefix = _prefix,
            Credentials = _ceph.Credentials,
            DigestIndexPath = State.Combine("digests.tsv"),
        }, _log);
        Server = new ProtocolServer(Source, new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, _port) }, _log);
        Server.Start();
        _port = Server.LocalEndPoint.Port;
    }

    public async Task StopAsync()
    {
        await Server.DisposeAsync();
        await Source.DisposeAsync();
    }

    public void StartProxy()
    {
        _cacheDirectory = new TempDirectory("fileproxy-cache");
        (Proxy, _cache) = ProxyServer.Create("127.0.0.1", _port, new CacheOptions { Directory = _cacheDirectory.Path, Fsync = false },
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log: TestLog.For(_output, "proxy"));
        Proxy.Start();
    }

    public Task PutAsync(string key, byte[] content, CancellationToken cancellationToken) =>
        _ceph.PutAsync(Bucket, key, content, cancellationToken);

    public Task<FileClient> ConnectAsync(CancellationToken cancellationToken) =>
        FileClient.ConnectAsync("127.0.0.1", _port, cancellationToken: cancellationToken);

    public Task<FileClient> ConnectProxyAsync(CancellationToken cancellationToken) =>
        FileClient.ConnectAsync("127.0.0.1", Proxy!.LocalEndPoint.Port, cancellationToken: cancellationToken);

    public long Counter(string name) => Source.Counters.Single(pair => pair.Key == name).Value;

    public async ValueTask DisposeAsync()
    {
        if (Proxy is not null)
        {
            await Proxy.DisposeAsync();
            await _cache!.DisposeAsync();
            _cacheDirectory!.Dispose();
        }
        await StopAsync();
        State.Dispose();
    }
}
