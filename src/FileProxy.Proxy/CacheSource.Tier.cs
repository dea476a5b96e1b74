using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Proxy.Tier;

namespace FileProxy.Proxy;

/// <summary>
/// Where the tier meets the cache: a miss is fetched from the peer that owns the name (<see cref="ProxyTier"/>),
/// or from the origin when this proxy owns it, when the request came from a peer (hop mark), or when the owner is
/// down and no other peer ranks before this one. Revalidations always ask the origin: they are this proxy's own
/// questions, never forwarded, so no chain of peers can wait on itself.
/// </summary>
public sealed partial class CacheSource
{
    private readonly ProxyTier? _tier;

    /// <summary>The tier this proxy belongs to, if any.</summary>
    public ProxyTier? Tier => _tier;

    private void CountHopMark(bool forwarded)
    {
        if (forwarded)
        {
            _tier?.CountHopMarked();
        }
    }

    /// <summary>Whether a fill started now for <paramref name="name"/> may fetch from another peer: only for a
    /// request without the hop mark, and only while another peer answers the name.</summary>
    private bool MayForward(SafeName name, bool forwarded) => !forwarded && _tier?.RouteOf(name) is not null;

    /// <summary>A proxy that keeps no copies of other peers' names relays them from the owner each time.</summary>
    private bool ForwardUncached(SafeName name) => _tier is { Options.KeepCopies: false } && _tier.RouteOf(name) is not null;

    /// <summary>A connection for fetching <paramref name="name"/>: to the peer that answers it when
    /// <paramref name="mayForward"/>, else (or when no peer answers) to the origin.</summary>
    private async Task<FileClient> RentUpstreamAsync(SafeName name, bool mayForward, CancellationToken cancellationToken)
    {
        if (mayForward && _tier is not null && await _tier.RentAsync(name, cancellationToken) is { } peer)
        {
            return peer;
        }
        return await _upstream.RentAsync(cancellationToken);
    }

    /// <summary>One request on an upstream connection for <paramref name="name"/> (see
    /// <see cref="RentUpstreamAsync"/>), tried again as <see cref="TryAgain"/> says.</summary>
    private async Task<T> RunUpstreamAsync<T>(SafeName name, bool mayForward, Func<FileClient, Task<T>> request,
        CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var client = await RentUpstreamAsync(name, mayForward, cancellationToken);
            try
            {
                return await request(client);
            }
            catch (UpstreamException e) when (!client.IsReusable && TryAgain(client, e, attempt))
            {
                // Once more: on a fresh connection, or from the next peer (or the origin).
                await ConnectionFailedAsync(client);
            }
            finally
            {
                await _upstream.ReturnAsync(client); // to the pool that opened it
            }
        }
    }

    /// <summary>
    /// A request on an upstream connection failed: whether to try again. The first failure is tried again (a pooled
    /// connection the peer or origin closed while idle; <see cref="ConnectionFailedAsync"/> then closes its idle
    /// siblings, so the retry connects afresh). A peer of the tier that did not answer in time, broke the protocol,
    /// or failed again on a fresh connection is marked down, and the request is tried on the next peer or the
    /// origin: a peer that accepts connections but never answers (a hung process, whose kernel still completes the
    /// handshakes) would otherwise fail every request for its names.
    /// </summary>
    private bool TryAgain(FileClient client, UpstreamException failure, int attempt)
    {
        var peerIsDown = _tier is not null && (attempt > 0 || failure.Permanent || failure.InnerException is OperationCanceledException)
            && _tier.PeerFailed(client.Pool, failure.Message);
        return attempt == 0 || (peerIsDown && attempt <= _tier!.Options.Peers.Count);
    }

    /// <summary>A connection failed mid-request: its idle siblings to the same peer are likely dead too (the peer
    /// went away), so the retry connects afresh, and a peer that is gone is then marked down at once.</summary>
    private static async ValueTask ConnectionFailedAsync(FileClient client)
    {
        if (client.Pool is { } pool)
        {
            await pool.CloseIdleAsync();
        }
    }
}
