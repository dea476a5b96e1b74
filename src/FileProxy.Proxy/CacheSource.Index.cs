using System.Diagnostics;
using FileProxy.Protocol;
using FileProxy.Proxy.Cache;

namespace FileProxy.Proxy;

public sealed partial class CacheSource
{
    public IEnumerable<KeyValuePair<string, long>> Counters
    {
        get
        {
            long entries, bytesCached, bytesInMemory, fills;
            lock (_lock)
            {
                entries = _entries.Count;
                bytesCached = _bytesCached;
                bytesInMemory = _bytesInMemory;
                fills = _fills.Count;
            }
            return
            [
                new("cache_hits", Interlocked.Read(ref _counters.Hits)),
                new("cache_stale_hits", Interlocked.Read(ref _counters.StaleHits)),
                new("cache_misses", Interlocked.Read(ref _counters.Misses)),
                new("coalesced_requests", Interlocked.Read(ref _counters.Coalesced)),
                new("pass_through", Interlocked.Read(ref _counters.PassThrough)),
                new("upstream_fetches", Interlocked.Read(ref _counters.UpstreamFetches)),
                new("upstream_failures", Interlocked.Read(ref _counters.UpstreamFailures)),
                new("bytes_fetched", Interlocked.Read(ref _counters.BytesFetched)),
                new("revalidations", Interlocked.Read(ref _counters.Revalidations)),
                new("revalidations_changed", Interlocked.Read(ref _counters.RevalidationsChanged)),
                new("evictions", Interlocked.Read(ref _counters.Evictions)),
                new("purges", Interlocked.Read(ref _counters.Purges)),
                new("fills_in_progress", fills),
                new("fills_queued", Interlocked.Read(ref _counters.FillsQueued)),
                new("upstream_queued", Interlocked.Read(ref _counters.UpstreamQueued)),
                new("fills_abandoned", Interlocked.Read(ref _counters.FillsAbandoned)),
                new("entries", entries),
                new("bytes_cached", bytesCached),
                new("bytes_in_memory", bytesInMemory),
                new("cache_max_bytes", _options.MaxBytes == long.MaxValue ? -1 : _options.MaxBytes),
                .. _tier?.Counters ?? [],
            ];
        }
    }

    /// <summary>Gives back the cache directory's lock when the proxy could not start.</summary>
    internal void ReleaseDirectory() => _store.Dispose();

    /// <summary>Rebuilds the index from a scan of the cache directory, most recently written first. Metadata is
    /// read on each entry's first use. An entry keeps its age across the restart (when the origin last confirmed
    /// it: its metadata's modification time), so one confirmed within <c>RevalidateAfter</c> is served without
    /// asking the origin, as before the restart; an older one, or one dated in the future (the clock was set back),
    /// is revalidated on first use. Called once, before the first request is accepted (and after the port is
    /// bound, so a taken port is reported at once).</summary>
    internal void LoadIndex()
    {
        var stopwatch = Stopwatch.StartNew();
        // The first SHA-256 (entry keys are the SHA-256 of the name) loads OpenSSL: libcrypto and libssl are mapped
        // and openssl.cnf is read, 3 ms on a quiet machine. Pay it here rather than in the first request.
        _ = CacheStore.KeyOf(SafeName.Create("warm-up"));
        var found = _store.Scan();
        var now = Environment.TickCount64;
        var nowUtc = DateTime.UtcNow.Ticks;
        var revalidateAfterMs = (long)_options.RevalidateAfter.TotalMilliseconds;
        lock (_lock)
        {
            foreach (var item in found.OrderByDescending(item => item.WrittenUtcTicks))
            {
                var ageMs = (nowUtc - item.ConfirmedUtcTicks) / TimeSpan.TicksPerMillisecond;
                var validatedAt = now - (ageMs >= 0 && ageMs < revalidateAfterMs ? ageMs : revalidateAfterMs);
                var entry = new CacheEntry(item.Key, item.DataPath, item.Size, validatedAt);
                _entries[item.Key] = entry;
                _lru.AddLast(entry.LruNode);
                _bytesCached += item.Size;
            }
        }
        _log.Information("Cache {Directory}: {Entries} entries, {Bytes} bytes, loaded in {ElapsedMs} ms",
            _store.Root, found.Count, _bytesCached, stopwatch.ElapsedMilliseconds);
        MakeRoom(0);
    }

    private sealed class CounterSet
    {
        public long Hits;
        public long StaleHits;
        public long Misses;
        public long Coalesced;
        public long PassThrough;
        public long UpstreamFetches;
        public long UpstreamFailures;
        public long BytesFetched;
        public long Revalidations;
        public long RevalidationsChanged;
        public long Evictions;
        public long Purges;
        public long FillsQueued;
        public long UpstreamQueued;
        public long FillsAbandoned;
    }
}
