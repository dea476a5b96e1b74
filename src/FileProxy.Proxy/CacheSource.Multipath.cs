using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;

namespace FileProxy.Proxy;

public sealed partial class CacheSource
{
    /// <summary>Whether a file of this size may be cached, reserving its space if so; if not, says so in the log
    /// (the caller passes it through). Space the other fills still need counts as taken: concurrent fills must not
    /// each see the same free bytes and together overrun the disk.</summary>
    private bool Fits(Fill fill, FileMetadata metadata)
    {
        var free = new DriveInfo(_store.Root).AvailableFreeSpace;
        long reserved;
        lock (_lock)
        {
            reserved = ReservedLocked();
            if (metadata.Size <= _options.MaxBytes && metadata.Size <= free - reserved)
            {
                fill.Reserve(metadata.Size);
                return true;
            }
        }
        _log.Write(metadata.Size > _options.MaxBytes ? Serilog.Events.LogEventLevel.Information : Serilog.Events.LogEventLevel.Warning,
            "{Name} ({Bytes} bytes) does not fit (cache cap {MaxBytes}, disk free {FreeBytes}); passing it through uncached",
            fill.Name, metadata.Size, _options.MaxBytes, free - reserved);
        return false;
    }

    /// <summary>Fetches a fill's file over several addresses of the origin (<see cref="MultipathFetcher"/>) into
    /// the temporary file, advancing the fill's written mark as the contiguous prefix grows. Returns null when the
    /// fill already ended (an error relayed, or passed through because it does not fit).</summary>
    private async Task<(FileMetadata Metadata, ContentDigest Digest)?> FetchOverPathsAsync(Fill fill,
        UpstreamMultipath multipath, CancellationToken cancellationToken)
    {
        await using var fetcher = await MultipathFetcher.ConnectAsync(multipath.Addresses, multipath.Options, _log, cancellationToken);
        var head = await fetcher.HeadAsync(fill.Name.Value, cancellationToken);
        if (!head.IsOk)
        {
            Retire(fill).Fail(Relay(head));
            return null;
        }
        var metadata = head.File!;
        if (!Fits(fill, metadata))
        {
            Retire(fill).PassThrough(head);
            return null;
        }
        MakeRoom(0); // this fill's size is in the reservations already
        var handle = fill.CreateFile(preallocate: metadata.Size);
        fill.Started(head with { Offset = 0, Length = metadata.Size });
        // A file that changes during the fill fails it (FileChangedException); the next request starts a new one.
        var result = await fetcher.FetchAsync(fill.Name.Value, metadata, handle, fill.Advance, cancellationToken);
        Interlocked.Add(ref _counters.BytesFetched, result.Bytes);
        _log.Information("Fetched {Name} ({Bytes} bytes) from the origin in {ElapsedMs} ms over {Carrying} of {Subflows} subflows",
            fill.Name, result.Bytes, (long)result.Elapsed.TotalMilliseconds, result.SubflowsCarrying, result.Subflows.Count);
        return (metadata, result.Digest);
    }
}
