namespace FileProxy.Proxy.Cache;

/// <summary>
/// One of the proxy's upstream slots (<see cref="CacheOptions.MaxConcurrentFills"/>, <c>--max-fills</c>): held by
/// whatever keeps an upstream connection busy for a request (a fill, a pass-through relay, a revalidation, a STAT,
/// a fill's reader continuing from the upstream) and given back once, when that work ends.
/// </summary>
internal sealed class UpstreamSlot
{
    private SemaphoreSlim? _slots;

    private UpstreamSlot(SemaphoreSlim slots) => _slots = slots;

    /// <summary>Waits for a free slot; <paramref name="queued"/> runs first when none is free.</summary>
    public static async ValueTask<UpstreamSlot> AcquireAsync(SemaphoreSlim slots, Action queued, CancellationToken cancellationToken)
    {
        if (!slots.Wait(0, CancellationToken.None))
        {
            queued();
            await slots.WaitAsync(cancellationToken);
        }
        return new UpstreamSlot(slots);
    }

    public void Release()
    {
        try
        {
            Interlocked.Exchange(ref _slots, null)?.Release();
        }
        catch (ObjectDisposedException)
        {
            // The cache stopped first: nobody waits for the slot any more.
        }
    }
}
