using FileProxy.Protocol.Client;
using FileProxy.Protocol.Tier;

namespace FileProxy.Proxy.Tier;

/// <summary>How a proxy takes part in a tier of proxies that share one cache by rendezvous hashing.</summary>
public sealed record TierOptions
{
    /// <summary>Every proxy of the tier, the same list on each (<c>--peer</c>).</summary>
    public required IReadOnlyList<TierPeer> Peers { get; init; }

    /// <summary>This proxy's own entry in <see cref="Peers"/>; null when it is not a member (it then owns no name
    /// and forwards every miss to the name's owner).</summary>
    public TierPeer? Self { get; init; }

    /// <summary>How long a peer that did not answer is left out before it is tried again (ATS marks a parent down
    /// the same way); meanwhile its names go to the next peer in their ranking.</summary>
    public TimeSpan DownFor { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Keep a copy of a name another peer owns after fetching it from that peer (later requests here are
    /// local hits), or relay it from the owner each time without keeping it.</summary>
    public bool KeepCopies { get; init; } = true;

    /// <summary>How to connect to the peers (timeouts, token); the hop mark is added to it.</summary>
    public FileClientOptions Connection { get; init; } = new() { ConnectTimeout = TimeSpan.FromSeconds(2) };
}
