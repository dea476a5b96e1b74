using System.Globalization;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Tier;
using Serilog;

namespace FileProxy.Proxy.Tier;

/// <summary>
/// A proxy's view of its tier: which peer answers misses for a name (the first peer of the name's rendezvous
/// ranking that is not marked down; this proxy itself means "the origin"), one connection pool per peer, and the
/// peers marked down after they did not answer. Every connection to a peer carries the hop mark, so the peer
/// answers from its cache or the origin and never forwards again.
/// </summary>
public sealed class ProxyTier : IAsyncDisposable
{
    private readonly TierOptions _options;
    private readonly Rendezvous _hash;
    private readonly int _self;
    private readonly Peer[] _peers;
    private readonly ILogger _log;
    private long _hopMarkedReceived;
    private long _hopBypass;

    public ProxyTier(TierOptions options, ILogger log)
    {
        _options = options;
        _log = log.ForContext<ProxyTier>();
        _hash = new Rendezvous(options.Peers);
        _self = options.Self is { } self ? IndexOf(self) : -1;
        var connection = options.Connection with { HopMark = true };
        _peers = [.. _hash.Peers.Select((peer, i) => new Peer(peer, i == _self ? null : new FileClientPool(peer.Host, peer.Port, connection)))];
    }

    public TierOptions Options => _options;

    /// <summary>The peer that answers misses for <paramref name="name"/> now, or null when this proxy does (it
    /// owns the name, or every peer ranked before it is down, or every peer is down).</summary>
    public TierPeer? RouteOf(SafeName name)
    {
        var index = RouteIndex(name);
        return index < 0 ? null : _peers[index].Address;
    }

    /// <summary>A connection to the peer that answers misses for <paramref name="name"/>, or null when this proxy
    /// should ask the origin itself. A peer that cannot be connected to is marked down and the next one tried.</summary>
    public async Task<FileClient?> RentAsync(SafeName name, CancellationToken cancellationToken)
    {
        while (RouteIndex(name) is var index and >= 0)
        {
            var peer = _peers[index];
            try
            {
                var client = await peer.Pool!.RentAsync(cancellationToken);
                Interlocked.Increment(ref peer.Forwarded);
                if (Interlocked.Exchange(ref peer.WasDown, 0) != 0)
                {
                    _log.Information("Tier peer {Peer} answers again; it takes its names back", peer.Address.Id);
                }
                return client;
            }
            catch (UpstreamException e)
            {
                MarkDown(peer, e.Message);
            }
        }
        return null;
    }

    /// <summary>A request to the peer whose pool is <paramref name="pool"/> failed in a way another try would meet
    /// again (no answer in time, a broken protocol, or a failure on a fresh connection): the peer is marked down, so
    /// its names go to the next peer. False when <paramref name="pool"/> is not a peer's (the origin's).</summary>
    public bool PeerFailed(FileClientPool? pool, string reason)
    {
        if (pool is null || Array.Find(_peers, peer => ReferenceEquals(peer.Pool, pool)) is not { } peer)
        {
            return false;
        }
        MarkDown(peer, reason);
        return true;
    }

    /// <summary>A GET or STAT arrived with the hop mark.</summary>
    public void CountHopMarked() => Interlocked.Increment(ref _hopMarkedReceived);

    /// <summary>A request with the hop mark met a fill here that is itself fetched from a peer, and went to the
    /// origin instead (the peers disagree on who owns the name).</summary>
    public void CountBypass() => Interlocked.Increment(ref _hopBypass);

    /// <summary>The tier's counters for STATS: totals, then per peer <c>peer:ID:state</c> (0 down, 1 up, 2 this
    /// proxy), <c>peer:ID:forwarded</c> and <c>peer:ID:down_ms</c> (time left out, 0 when up).</summary>
    public IEnumerable<KeyValuePair<string, long>> Counters
    {
        get
        {
            var now = Environment.TickCount64;
            var down = _peers.Count(peer => peer.Pool is not null && Volatile.Read(ref peer.DownUntil) > now);
            List<KeyValuePair<string, long>> counters =
            [
                new("tier_peers", _peers.Length),
                new("tier_peers_down", down),
                new("tier_forwarded", _peers.Sum(peer => Interlocked.Read(ref peer.Forwarded))),
                new("tier_peer_failures", _peers.Sum(peer => Interlocked.Read(ref peer.Failures))),
                new("tier_hop_marked_received", Interlocked.Read(ref _hopMarkedReceived)),
                new("tier_hop_bypass", Interlocked.Read(ref _hopBypass)),
            ];
            foreach (var peer in _peers)
            {
                var left = Math.Max(0, Volatile.Read(ref peer.DownUntil) - now);
                counters.Add(new($"peer:{peer.Address.Id}:state", peer.Pool is null ? 2 : left > 0 ? 0 : 1));
                counters.Add(new($"peer:{peer.Address.Id}:forwarded", Interlocked.Read(ref peer.Forwarded)));
                counters.Add(new($"peer:{peer.Address.Id}:down_ms", left));
            }
            return counters;
        }
    }

    /// <summary>Describes the tier for the start-up log.</summary>
    public string Describe() => string.Join(", ", _peers.Select(peer => peer.Pool is null ? $"{peer.Address.Id} (this proxy)" : peer.Address.Id));

    public async ValueTask DisposeAsync()
    {
        foreach (var peer in _peers)
        {
            if (peer.Pool is not null)
            {
                await peer.Pool.DisposeAsync();
            }
        }
    }

    private int RouteIndex(SafeName name)
    {
        Span<int> order = stackalloc int[_peers.Length];
        _hash.Rank(name.Value, order);
        var now = Environment.TickCount64;
        foreach (var index in order)
        {
            if (index == _self)
            {
                return -1;
            }
            if (Volatile.Read(ref _peers[index].DownUntil) <= now)
            {
                return index;
            }
        }
        return -1; // every other peer is down: the origin
    }

    private void MarkDown(Peer peer, string reason)
    {
        Interlocked.Increment(ref peer.Failures);
        var until = Environment.TickCount64 + (long)_options.DownFor.TotalMilliseconds;
        var before = Interlocked.Exchange(ref peer.DownUntil, until);
        Volatile.Write(ref peer.WasDown, 1);
        if (before <= Environment.TickCount64)
        {
            _log.Warning("Tier peer {Peer} did not answer ({Reason}); its names go to the next peer for {DownFor}",
                peer.Address.Id, reason, Units.FormatDuration(_options.DownFor));
        }
    }

    private int IndexOf(TierPeer self)
    {
        for (var i = 0; i < _hash.Peers.Count; i++)
        {
            if (_hash.Peers[i].Id == self.Id)
            {
                return i;
            }
        }
        throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{self.Id} is not one of the peers"), nameof(self));
    }

    private sealed class Peer(TierPeer address, FileClientPool? pool)
    {
        public TierPeer Address { get; } = address;

        /// <summary>Null for this proxy itself.</summary>
        public FileClientPool? Pool { get; } = pool;

        public long Forwarded;
        public long Failures;
        public long DownUntil;
        public int WasDown;
    }
}
