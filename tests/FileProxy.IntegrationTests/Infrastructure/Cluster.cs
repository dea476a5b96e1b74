using System.Net;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using FileProxy.Server;
using Serilog;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// A real origin server and a real proxy in this process, on loopback port 0, over temporary directories.
/// </summary>
public sealed class Cluster : IAsyncDisposable
{
    private readonly ILogger _originLog;
    private readonly ILogger _proxyLog;
    private readonly Func<CacheOptions, CacheOptions> _configureCache;
    private int _originPort;

    private Cluster(ITestOutputHelper output, Func<CacheOptions, CacheOptions>? configureCache, Func<IFileSource, IFileSource>? wrapOrigin)
    {
        _originLog = TestLog.For(output, "origin");
        _proxyLog = TestLog.For(output, "proxy");
        _configureCache = configureCache ?? (options => options);
        WrapOrigin = wrapOrigin ?? (source => source);
    }

    public TempDirectory Root { get; } = new("fileproxy-root");

    public TempDirectory CacheDirectory { get; } = new("fileproxy-cache");

    public ProtocolServer? Origin { get; private set; }

    public ProtocolServer Proxy { get; private set; } = null!;

    public CacheSource Cache { get; private set; } = null!;

    public Func<IFileSource, IFileSource> WrapOrigin { get; }

    public int ProxyPort => Proxy.LocalEndPoint.Port;

    public int OriginPort => _originPort;

    /// <summary>Starts an origin over <see cref="Root"/> and a proxy in front of it.</summary>
    public static async Task<Cluster> StartAsync(ITestOutputHelper output, Func<CacheOptions, CacheOptions>? configureCache = null,
        Func<IFileSource, IFileSource>? wrapOrigin = null)
    {
        var cluster = new Cluster(output, configureCache, wrapOrigin);
        cluster.StartOrigin(0);
        cluster.StartProxy();
        await Task.CompletedTask;
        return cluster;
    }

    public void StartOrigin(int port)
    {
        var source = WrapOrigin(new DirectorySource(Root.Path, _originLog));
        Origin = new ProtocolServer(source, new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, port) }, _originLog);
        Origin.Start();
        _originPort = Origin.LocalEndPoint.Port;
    }

    public async Task StopOriginAsync()
    {
        if (Origin is not null)
        {
            await Origin.DisposeAsync();
            Origin = null;
        }
    }

    /// <summary>Starts the origin again on the port it had.</summary>
    public void RestartOrigin() => StartOrigin(_originPort);

    public void StartProxy()
    {
        var options = _configureCache(new CacheOptions { Directory = CacheDirectory.Path, Fsync = false });
        (Proxy, Cache) = ProxyServer.Create("127.0.0.1", _originPort, options,
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log: _proxyLog);
        Proxy.Start();
    }

    public async Task StopProxyAsync()
    {
        await Proxy.DisposeAsync();
        await Cache.DisposeAsync();
    }

    public Task<FileClient> ConnectProxyAsync(CancellationToken cancellationToken = default) =>
        FileClient.ConnectAsync("127.0.0.1", ProxyPort, cancellationToken: cancellationToken);

    public Task<FileClient> ConnectOriginAsync(CancellationToken cancellationToken = default) =>
        FileClient.ConnectAsync("127.0.0.1", _originPort, cancellationToken: cancellationToken);

    /// <summary>Reads the proxy's STATS counters.</summary>
    public async Task<IReadOnlyDictionary<string, long>> ProxyStatsAsync(CancellationToken cancellationToken = default)
    {
        await using var client = await ConnectProxyAsync(cancellationToken);
        var head = await client.StatsAsync(cancellationToken);
        return head.Counters.ToDictionary(pair => pair.Key, pair => pair.Value);
    }

    public async ValueTask DisposeAsync()
    {
        await StopProxyAsync();
        await StopOriginAsync();
        Root.Dispose();
        CacheDirectory.Dispose();
    }
}
