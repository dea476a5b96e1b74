using System.Buffers;
using System.IO.Hashing;
using System.Text;

namespace FileProxy.Protocol.Tier;

/// <summary>
/// Rendezvous (highest-random-weight) hashing over the peers of a tier: each (peer, name) pair gets a score, and
/// the peer with the highest score owns the name; the others follow in score order, so when the owner is down the
/// next one takes its names, and only its names. Adding or removing one of N peers moves about 1/N of the names.
/// <para>Score = XxHash64 of the name's UTF-8 bytes, seeded with XxHash64 of the peer's <see cref="TierPeer.Id"/>
/// (seed 0): stable across processes, machines and versions (never <c>string.GetHashCode</c>, which is randomised
/// per process), and about 25 ns per peer for a short name. Equal scores (never seen) go to the smaller id. The
/// proxy and the client (<c>--tier</c>) both use this one implementation.</para>
/// </summary>
public sealed class Rendezvous
{
    private readonly TierPeer[] _peers;
    private readonly long[] _seeds;

    public Rendezvous(IEnumerable<TierPeer> peers)
    {
        // Sorted by id, so the order a list was written in changes nothing (not even ties).
        _peers = [.. peers.DistinctBy(peer => peer.Id, StringComparer.Ordinal).OrderBy(peer => peer.Id, StringComparer.Ordinal)];
        if (_peers.Length == 0)
        {
            throw new ArgumentException("a tier needs at least one peer", nameof(peers));
        }
        _seeds = [.. _peers.Select(peer => (long)XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(peer.Id)))];
    }

    /// <summary>The peers, ordered by id.</summary>
    public IReadOnlyList<TierPeer> Peers => _peers;

    /// <summary>The score of one (peer, name) pair; the highest score owns the name.</summary>
    public static ulong Score(string peerId, string name) =>
        XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(name), (long)XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(peerId)));

    /// <summary>The index (in <see cref="Peers"/>) of the peer that owns <paramref name="name"/> when all are up.</summary>
    public int Owner(string name)
    {
        Span<int> order = _peers.Length <= 64 ? stackalloc int[_peers.Length] : new int[_peers.Length];
        Rank(name, order);
        return order[0];
    }

    /// <summary>Fills <paramref name="order"/> (one slot per peer) with peer indexes, owner first, then the peers
    /// that take the name over when the ones before are down.</summary>
    public void Rank(string name, Span<int> order)
    {
        if (order.Length != _peers.Length)
        {
            throw new ArgumentException($"needs {_peers.Length} slots", nameof(order));
        }
        var byteCount = Encoding.UTF8.GetByteCount(name);
        var rented = byteCount > 1024 ? ArrayPool<byte>.Shared.Rent(byteCount) : null;
        try
        {
            Span<byte> bytes = rented ?? stackalloc byte[1024];
            bytes = bytes[..Encoding.UTF8.GetBytes(name, bytes)];
            Span<ulong> scores = _peers.Length <= 64 ? stackalloc ulong[_peers.Length] : new ulong[_peers.Length];
            for (var i = 0; i < _peers.Length; i++)
            {
                scores[i] = XxHash64.HashToUInt64(bytes, _seeds[i]);
                order[i] = i;
            }
            // Insertion sort, highest score first: tiers have a handful of peers. Peers are sorted by id, so on equal
            // scores the smaller id stays first.
            for (var i = 1; i < order.Length; i++)
            {
                var index = order[i];
                var j = i - 1;
                while (j >= 0 && scores[order[j]] < scores[index])
                {
                    order[j + 1] = order[j];
                    j--;
                }
                order[j + 1] = index;
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}
