using System.Net;
using System.Net.Sockets;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using FileProxy.Server;
using Serilog;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// A real origin server and a real proxy in this process, on loopback port 0, over temporary directories. The
/// origin's port belongs to the cluster for its whole life (<see cref="OwnedPort"/>): a stopped origin's port refuses
/// connections and no other test can take it, so the proxy never reaches another test's origin.
/// </summary>
public sealed class Cluster : IAsyncDisposable
{
    private readonly ILogger _originLog;
    private readonly ILogger _proxyLog;
    private readonly Func<CacheOptions, CacheOptions> _configureCache;
    private readonly OwnedPort _originPort = new();

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

    public int OriginPort => _originPort.Port;

    /// <summary>Starts an origin over <see cref="Root"/> and a proxy in front of it.</summary>
    public static async Task<Cluster> StartAsync(ITestOutputHelper output, Func<CacheOptions, CacheOptions>? configureCache = null,
        Func<IFileSource, IFileSource>? wrapOrigin = null)
    {
        var cluster = new Cluster(output, configureCache, wrapOrigin);
        cluster.StartOrigin();
        cluster.StartProxy();
        await Task.CompletedTask;
        return cluster;
    }

    /// <summary>Starts the origin on the cluster's port (again, after <see cref="StopOriginAsync"/>).</summary>
    public void StartOrigin()
    {
        var source = WrapOrigin(new DirectorySource(Root.Path, _originLog));
        Origin = new ProtocolServer(source, new ProtocolServerOptions { ListenSocket = _originPort.Listen() }, _originLog);
        Origin.Start();
    }

    /// <summary>Stops the origin; its port stays the cluster's and refuses connections until a restart.</summary>
    public async Task StopOriginAsync()
    {
        if (Origin is not null)
        {
            await Origin.DisposeAsync();
            Origin = null;
        }
    }

    /// <summary>Starts the origin again on the port it had.</summary>
    public void RestartOrigin() => StartOrigin();

    public void StartProxy()
    {
        var options = _configureCache(new CacheOptions { Directory = CacheDirectory.Path, Fsync = false });
        (Proxy, Cache) = ProxyServer.Create("127.0.0.1", OriginPort, options,
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
        FileClient.ConnectAsync("127.0.0.1", OriginPort, cancellationToken: cancellationToken);

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
        _originPort.Dispose();
        Root.Dispose();
        CacheDirectory.Dispose();
    }
}
