using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;

namespace FileProxy.Proxy;

public sealed partial class CacheSource
{
    /// <summary>Idle subflows to the origin's addresses, kept between fills (null without --upstream-address).</summary>
    private readonly SubflowPool? _subflowPool;

    /// <summary>Connections the fills over several paths opened to the origin (the rest came from the pool).</summary>
    internal int SubflowsConnected => _subflowPool?.Connected ?? 0;

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
    /// fill already ended (an error relayed, passed through because it does not fit or its file cannot be created,
    /// or abandoned because the disk failed mid-way: as on one path, the disk costs the copy, not the readers).</summary>
    private async Task<(FileMetadata Metadata, ContentDigest Digest)?> FetchOverPathsAsync(Fill fill,
        UpstreamMultipath multipath, CancellationToken cancellationToken)
    {
        await using var fetcher = await MultipathFetcher.ConnectAsync(multipath.Addresses, multipath.Options, _log, cancellationToken, _subflowPool);
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
        if (TryCreateFile(fill, metadata.Size) is not { } handle)
        {
            Retire(fill).PassThrough(head);
            return null;
        }
        fill.Started(head with { Offset = 0, Length = metadata.Size });
        MultipathResult result;
        try
        {
            // A file that changes during the fill fails it (FileChangedException); the next request starts a new one.
            result = await fetcher.FetchAsync(fill.Name.Value, metadata, handle, fill.Advance, cancellationToken);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The subflows' network failures arrive as UpstreamException or MultipathException: an IOException here
            // is the temporary file's (the disk filled or failed). Readers send the verified prefix and continue
            // from the origin, uncached.
            Abandon(fill, e);
            return null;
        }
        Interlocked.Add(ref _counters.BytesFetched, result.Bytes);
        _log.Information("Fetched {Name} ({Bytes} bytes) from the origin in {ElapsedMs} ms over {Carrying} of {Subflows} subflows",
            fill.Name, result.Bytes, (long)result.Elapsed.TotalMilliseconds, result.SubflowsCarrying, result.Subflows.Count);
        return (metadata, result.Digest);
    }

    /// <summary>Creates the fill's temporary file; null (with a Warning) when the disk refuses it (full, out of
    /// inodes): the caller passes the file through uncached rather than fail its readers.</summary>
    private Microsoft.Win32.SafeHandles.SafeFileHandle? TryCreateFile(Fill fill, long preallocate)
    {
        try
        {
            return fill.CreateFile(preallocate);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("Cannot create the cache file for {Name} ({Reason}); passing it through uncached", fill.Name, e.Message);
            return null;
        }
    }
}
