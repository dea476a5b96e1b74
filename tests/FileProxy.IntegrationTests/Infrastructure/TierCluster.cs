using System.Security.Cryptography.X509Certificates;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Tier;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using FileProxy.Proxy.Tier;
using FileProxy.Server;
using Serilog;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// An origin and a tier of proxies in this process, on loopback. Every port belongs to the cluster for its whole
/// life (<see cref="OwnedPort"/>), so each proxy knows the others' ports before any of them starts, and a stopped
/// proxy's port refuses connections (as a dead machine's would) until it starts again on the same port and cache.
/// The origin counts GETs and STATs per name (<see cref="OriginControl"/>).
/// </summary>
public sealed class TierCluster : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly OwnedPort _originPort = new();
    private readonly OwnedPort[] _ports;
    private readonly TempDirectory[] _caches;
    private readonly (ProtocolServer Server, CacheSource Cache)?[] _proxies;
    private readonly Func<int, TierOptions> _tierOf;
    private readonly Func<CacheOptions, CacheOptions> _configureCache;
    private readonly ProtocolServer _origin;

    private readonly (X509Certificate2 Certificate, X509Certificate2Collection Trust)? _tls;

    /// <param name="tls">When given, every proxy serves TLS with this certificate, asks its peers over TLS trusting
    /// it, and <see cref="ConnectAsync"/> does too.</param>
    public TierCluster(ITestOutputHelper output, int proxies, Func<TierCluster, int, TierOptions>? tierOf = null,
        TimeSpan? downFor = null, bool keepCopies = true, Func<CacheOptions, CacheOptions>? configureCache = null,
        (X509Certificate2 Certificate, X509Certificate2Collection Trust)? tls = null)
    {
        _output = output;
        _tls = tls;
        _configureCache = configureCache ?? (options => options);
        _ports = [.. Enumerable.Range(0, proxies).Select(_ => new OwnedPort())];
        _caches = [.. Enumerable.Range(0, proxies).Select(_ => new TempDirectory("fileproxy-tier-cache"))];
        _proxies = new (ProtocolServer, CacheSource)?[proxies];
        _tierOf = tierOf is null
            ? index => new TierOptions
            {
                Peers = Peers,
                Self = Peers[index],
                DownFor = downFor ?? TimeSpan.FromSeconds(10),
                KeepCopies = keepCopies,
                Connection = ClientOptions with { ConnectTimeout = TimeSpan.FromSeconds(2) },
            }
            : index => tierOf(this, index);
        var originLog = TestLog.For(output, "origin");
        _origin = new ProtocolServer(Origin.Wrap(new DirectorySource(Root.Path, originLog)),
            new ProtocolServerOptions { ListenSocket = _originPort.Listen() }, originLog);
        _origin.Start();
    }

    public TempDirectory Root { get; } = new("fileproxy-tier-root");

    public OriginControl Origin { get; } = new();

    /// <summary>Every proxy as a tier member, in index order.</summary>
    public TierPeer[] Peers => [.. _ports.Select(port => new TierPeer("127.0.0.1", port.Port))];

    public int Count => _ports.Length;

    public int Port(int index) => _ports[index].Port;

    public int OriginPort => _originPort.Port;

    public CacheSource Cache(int index) => _proxies[index]?.Cache ?? throw new InvalidOperationException($"proxy {index} is stopped");

    public bool IsRunning(int index) => _proxies[index] is not null;

    /// <summary>The index of the proxy that owns <paramref name="name"/> when all are up.</summary>
    public int OwnerOf(string name)
    {
        var hash = new Rendezvous(Peers);
        var owner = hash.Peers[hash.Owner(name)];
        return Array.FindIndex(Peers, peer => peer == owner);
    }

    public void StartAll()
    {
        for (var i = 0; i < Count; i++)
        {
            Start(i);
        }
    }

    /// <summary>Starts proxy <paramref name="index"/> on its own port and cache directory (again, after a stop).</summary>
    public void Start(int index)
    {
        var log = TestLog.For(_output, $"proxy{index}");
        var options = _configureCache(new CacheOptions { Directory = _caches[index].Path, Fsync = false, Tier = _tierOf(index) });
        var proxy = ProxyServer.Create("127.0.0.1", _originPort.Port, options,
            new ProtocolServerOptions
            {
                ListenSocket = _ports[index].Listen(),
                DrainTimeout = TimeSpan.FromMilliseconds(100),
                TlsCertificate = _tls?.Certificate,
            }, log: log);
        proxy.Server.Start();
        _proxies[index] = proxy;
    }

    /// <summary>Stops proxy <paramref name="index"/>; its port refuses connections until <see cref="Start"/>.</summary>
    public async Task StopAsync(int index)
    {
        if (_proxies[index] is { } proxy)
        {
            _proxies[index] = null;
            await proxy.Server.DisposeAsync();
            await proxy.Cache.DisposeAsync();
        }
    }

    /// <summary>How a client (or a peer) connects to the proxies: over TLS when they serve it.</summary>
    public FileClientOptions ClientOptions => _tls is { } tls ? new FileClientOptions { Tls = true, TlsTrust = tls.Trust } : new FileClientOptions();

    public Task<FileClient> ConnectAsync(int index, CancellationToken cancellationToken) =>
        FileClient.ConnectAsync("127.0.0.1", Port(index), ClientOptions, cancellationToken);

    /// <summary>Proxy <paramref name="index"/>'s STATS counters, asked over the wire.</summary>
    public async Task<IReadOnlyDictionary<string, long>> StatsAsync(int index, CancellationToken cancellationToken)
    {
        await using var client = await ConnectAsync(index, cancellationToken);
        var head = await client.StatsAsync(cancellationToken);
        return head.Counters.ToDictionary(pair => pair.Key, pair => pair.Value);
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < Count; i++)
        {
            await StopAsync(i);
        }
        await _origin.DisposeAsync();
        Origin.Dispose();
        _originPort.Dispose();
        foreach (var port in _ports)
        {
            port.Dispose();
        }
        foreach (var cache in _caches)
        {
            cache.Dispose();
        }
        Root.Dispose();
    }
}
