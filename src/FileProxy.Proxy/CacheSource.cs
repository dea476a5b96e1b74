using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;
using Serilog;

namespace FileProxy.Proxy;

/// <summary>
/// The proxy's file source: serves committed entries from the cache directory, and on a miss runs exactly one
/// upstream fetch per name (<see cref="Fill"/>) that every concurrent request reads while it is written.
/// </summary>
public sealed partial class CacheSource : IFileSource, IAsyncDisposable
{
    private readonly CacheOptions _options;
    private readonly FileClientPool _upstream;
    private readonly CacheStore _store;
    private readonly ILogger _log;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, CacheEntry> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Fill> _fills = new(StringComparer.Ordinal);
    private readonly LinkedList<CacheEntry> _lru = new(); // most recently used first
    private readonly HashSet<Task> _runningFills = [];
    private readonly CancellationTokenSource _shutdown = new();
    private readonly CounterSet _counters = new();
    /// <summary>The upstream slots (<c>--max-fills</c>): every request's upstream connection holds one.</summary>
    private readonly SemaphoreSlim _fillSlots;

    /// <summary>Ranges up to this size are read into memory and leave in one packet with their head; entries up to
    /// this size are kept in memory whole (within <see cref="InMemoryBudgetBytes"/>).</summary>
    private const int SmallBodyBytes = 12 * 1024;

    /// <summary>
    /// Most bytes of small entries held in memory at once (<see cref="CacheEntry.InMemory"/>): 4,096 files of 4 KiB.
    /// A hit on one is a copy from memory instead of a pread(2) of the file, which was 14 % of the proxy's CPU per 4
    /// KiB hit (perf, bench workload c), and on a paravirtualized machine every system call is dear. The first
    /// entries to be read take the room; an entry gives it back when it leaves the index.
    /// </summary>
    private const long InMemoryBudgetBytes = 16 * 1024 * 1024;

    private long _bytesInMemory;
    private readonly object[] _diskLocks = [.. Enumerable.Range(0, 64).Select(_ => new object())];
    private long _bytesCached;
    private int _disposed;
    private Task _warming = Task.CompletedTask;

    public CacheSource(CacheOptions options, FileClientPool upstream, ILogger? log = null)
    {
        _options = options;
        _upstream = upstream;
        _log = (log ?? Log.Logger).ForContext<CacheSource>();
        _fillSlots = new SemaphoreSlim(options.MaxConcurrentFills);
        _store = new CacheStore(options.Directory, _log);
        _tier = options.Tier is null ? null : new Tier.ProxyTier(options.Tier, _log);
        _subflowPool = options.Multipath is { } multipath ? new SubflowPool(multipath.Addresses, options.MaxConcurrentFills) : null;
    }

    public string Role => "proxy";

    /// <summary>Opens one upstream connection in the background and leaves it idle in the pool: the first miss,
    /// revalidation or STAT after a start then finds one ready instead of connecting on its request's path.</summary>
    public void WarmUpstream() => _warming = WarmUpstreamAsync();

    /// <summary>Upstream connections idle in the pool now.</summary>
    internal int UpstreamIdle => _upstream.IdleCount;

    private async Task WarmUpstreamAsync()
    {
        await Task.Yield(); // off the caller's (start-up's) path
        try
        {
            if (await _upstream.WarmAsync(_shutdown.Token))
            {
                _log.Debug("An upstream connection to {Host}:{Port} is open and idle", _upstream.Host, _upstream.Port);
            }
        }
        catch (Exception e) when (e is UpstreamException or IOException or System.Net.Sockets.SocketException)
        {
            _log.Information("Upstream {Host}:{Port} not reachable yet ({Reason}); the first request will connect", _upstream.Host,
                _upstream.Port, e.Message);
        }
        catch (OperationCanceledException)
        {
            // Stopped while connecting.
        }
    }

    public string CacheDirectory => _store.Root;

    public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
    {
        CountHopMark(request.Forwarded);
        string? key = null; // a miss needs it as a string; a hit looks its entry up without one
        for (var attempt = 0; attempt < 4; attempt++)
        {
            var (entry, error, stale) = await FreshEntryAsync(name, cancellationToken);
            if (error is not null)
            {
                return error;
            }
            if (entry is not null)
            {
                var metadata = entry.File!;
                if (request.IfVersion.Length > 0 && request.IfVersion != metadata.Version)
                {
                    return VersionMismatch(metadata, request);
                }
                if (!ByteRange.TryResolve(request.Offset, request.Length, metadata.Size, out var range))
                {
                    return ByteRange.NotSatisfiable(request.Offset, metadata.Size);
                }
                IResponseBody? body = entry.Size <= SmallBodyBytes ? FromMemory(entry, range)
                    : range.Length <= SmallBodyBytes ? ReadSmall(entry, range)
                    : OpenEntry(entry, range);
                if (body is null)
                {
                    continue; // evicted or replaced in between: look again
                }
                Interlocked.Increment(ref stale ? ref _counters.StaleHits : ref _counters.Hits);
                var head = !stale && range.Offset == 0 && range.Length == metadata.Size
                    ? entry.WholeFileHitHead(metadata)
                    : new ResponseHead(StatusCode.Ok, "")
                    {
                        File = metadata,
                        Offset = range.Offset,
                        Length = range.Length,
                        Source = stale ? ResponseSource.StaleHit : ResponseSource.CacheHit,
                    };
                return new SourceResult(head, body);
            }
            if (!request.Forwarded && ForwardUncached(name))
            {
                return await PassThroughAsync(name, request, mayForward: true, cancellationToken);
            }
            var (fill, started, bypass) = JoinOrStartFill(name, key ??= CacheStore.KeyOf(name), request.Forwarded);
            if (bypass)
            {
                return await PassThroughAsync(name, request, mayForward: false, cancellationToken);
            }
            if (fill is not null)
            {
                return await ReadFillAsync(fill, started, request, cancellationToken);
            }
        }
        return ResponseHead.Error(StatusCode.Busy, $"'{name}' keeps changing in the cache; try again");
    }

    public ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken) =>
        StatAsync(name, new StatRequest(name.Value), cancellationToken);

    public async ValueTask<ResponseHead> StatAsync(SafeName name, StatRequest request, CancellationToken cancellationToken)
    {
        CountHopMark(request.Forwarded);
        var (entry, error, stale) = await FreshEntryAsync(name, cancellationToken);
        if (error is not null)
        {
            return error;
        }
        if (entry is not null)
        {
            return new ResponseHead(StatusCode.Ok, "") { File = entry.File!, Source = stale ? ResponseSource.StaleHit : ResponseSource.CacheHit };
        }
        var slot = await UpstreamSlotAsync(cancellationToken);
        try
        {
            var head = await RunUpstreamAsync(name, !request.Forwarded, client => client.StatAsync(name.Value, cancellationToken),
                cancellationToken);
            return head.IsOk ? head with { Source = ResponseSource.Origin } : Relay(head);
        }
        catch (UpstreamException e)
        {
            return Unreachable(name, e);
        }
        finally
        {
            slot.Release();
        }
    }

    /// <summary>Forwards a LIST to the origin, every time: listings are not cached (a directory changes without a
    /// version tag of its own to revalidate against, and a LIST is one small round trip). The origin's errors are
    /// relayed as for GET; an unreachable origin is UpstreamUnavailable (there is no stale listing to serve).</summary>
    public async ValueTask<ResponseHead> ListAsync(SafeName? directory, string cursor, int limit, CancellationToken cancellationToken)
    {
        try
        {
            var head = await _upstream.RunAsync(
                client => client.ListAsync(directory?.Value ?? "", cursor, (ushort)limit, cancellationToken), cancellationToken);
            return head.IsOk ? head : Relay(head);
        }
        catch (UpstreamException e)
        {
            Interlocked.Increment(ref _counters.UpstreamFailures);
            _log.Warning("Origin unreachable to list {Name}: {Reason}", directory?.Value ?? ".", e.Message);
            return ResponseHead.Error(StatusCode.UpstreamUnavailable, $"origin unreachable: {e.Message}");
        }
    }

    public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken)
    {
        if (!_options.AllowPurge)
        {
            return ValueTask.FromResult(ResponseHead.Error(StatusCode.Forbidden,
                "purge is disabled on this proxy (start it with --allow-purge)"));
        }
        CacheEntry? entry;
        Fill? fill;
        lock (_lock)
        {
            if (_entries.TryGetValue(CacheStore.KeyOf(name), out entry))
            {
                RemoveLocked(entry);
            }
            // A fill under way would commit the purged file right back: it still serves its readers, keeps nothing,
            // and the next request starts afresh.
            if (_fills.Remove(name.Value, out fill))
            {
                fill.Purged = true;
            }
        }
        if (entry is null)
        {
            if (fill is not null)
            {
                Interlocked.Increment(ref _counters.Purges);
                _log.Information("Purged {Name} while it was being fetched; it will not be kept", name);
                return ValueTask.FromResult(new ResponseHead(StatusCode.Ok, $"purged '{name}' (it was being fetched; it will not be kept)"));
            }
            return ValueTask.FromResult(ResponseHead.Error(StatusCode.NotFound, $"'{name}' is not cached"));
        }
        Interlocked.Increment(ref _counters.Purges);
        DeleteIfUnread(entry);
        _log.Information("Purged {Name}", name);
        return ValueTask.FromResult(new ResponseHead(StatusCode.Ok, $"purged '{name}' ({entry.Size} bytes)"));
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _shutdown.CancelAsync();
        Task[] fills;
        lock (_lock)
        {
            fills = [.. _runningFills];
        }
        await Task.WhenAll(fills);
        await _warming;
        await _upstream.DisposeAsync();
        if (_tier is not null)
        {
            await _tier.DisposeAsync();
        }
        if (_subflowPool is not null)
        {
            await _subflowPool.DisposeAsync();
        }
        _shutdown.Dispose();
        _fillSlots.Dispose();
        _store.Dispose();
    }

    /// <summary>The committed entry for <paramref name="name"/>, if any: the key hashed into a stack buffer outside
    /// the lock and looked up by span, so a hit allocates no key string.</summary>
    private CacheEntry? Lookup(SafeName name)
    {
        Span<char> key = stackalloc char[CacheStore.KeyLength];
        CacheStore.KeyOf(name, key);
        lock (_lock)
        {
            return _entries.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(key, out var entry) ? entry : null;
        }
    }

    /// <summary>
    /// The entry to serve for <paramref name="name"/>, revalidated with the origin when due; null entry and null
    /// error mean "not cached". A changed or vanished file is dropped here.
    /// </summary>
    private async ValueTask<(CacheEntry? Entry, ResponseHead? Error, bool Stale)> FreshEntryAsync(SafeName name,
        CancellationToken cancellationToken)
    {
        Task<Revalidation> revalidating;
        var entry = Lookup(name);
        if (entry is null || (!entry.IsLoaded && !await EnsureLoadedAsync(entry, name)))
        {
            return (null, null, false);
        }
        lock (_lock)
        {
            if (Environment.TickCount64 - entry.ValidatedAt < _options.RevalidateAfter.TotalMilliseconds)
            {
                return entry.Stale && !_options.ServeStaleOnError
                    ? (null, ResponseHead.Error(StatusCode.UpstreamUnavailable, "origin unreachable (the last revalidation failed)"), false)
                    : (entry, null, entry.Stale);
            }
            revalidating = entry.Revalidating ??= RevalidateAsync(entry);
        }
        var result = await revalidating.WaitAsync(cancellationToken);
        return Outcome(entry, result);
    }

    private (CacheEntry? Entry, ResponseHead? Error, bool Stale) Outcome(CacheEntry entry, Revalidation result)
    {
        return result.Outcome switch
        {
            RevalidationOutcome.Unchanged => (entry, null, false),
            RevalidationOutcome.Changed => (null, null, false),
            RevalidationOutcome.Gone or RevalidationOutcome.Refused => (null, result.Head, false),
            _ when _options.ServeStaleOnError => (entry, null, true),
            _ => (null, ResponseHead.Error(StatusCode.UpstreamUnavailable, $"origin unreachable: {result.Reason}"), false),
        };
    }

    private async Task<Revalidation> RevalidateAsync(CacheEntry entry)
    {
        await Task.Yield();
        Interlocked.Increment(ref _counters.Revalidations);
        Revalidation result;
        UpstreamSlot? slot = null;
        try
        {
            slot = await UpstreamSlotAsync(_shutdown.Token);
            var head = await _upstream.RunAsync(client => client.StatAsync(entry.Name!.Value, _shutdown.Token), _shutdown.Token);
            result = head.Status switch
            {
                StatusCode.Ok when head.File!.Version == entry.File!.Version && head.File.Digest == entry.File.Digest =>
                    new Revalidation(RevalidationOutcome.Unchanged),
                StatusCode.Ok => new Revalidation(RevalidationOutcome.Changed),
                StatusCode.NotFound => new Revalidation(RevalidationOutcome.Gone, Relay(head)),
                StatusCode.UpstreamUnavailable or StatusCode.Busy or StatusCode.InternalError =>
                    new Revalidation(RevalidationOutcome.Unreachable, Reason: $"{head.Status}: {head.Message}"),
                _ => new Revalidation(RevalidationOutcome.Refused, Relay(head)),
            };
        }
        catch (Exception e) when (e is UpstreamException or OperationCanceledException)
        {
            result = new Revalidation(RevalidationOutcome.Unreachable, Reason: e.Message);
        }
        finally
        {
            slot?.Release();
        }
        var drop = false;
        var confirmed = false;
        lock (_lock)
        {
            entry.Revalidating = null;
            switch (result.Outcome)
            {
                case RevalidationOutcome.Unchanged:
                    entry.ValidatedAt = Environment.TickCount64;
                    entry.Stale = false;
                    confirmed = !entry.Removed;
                    break;
                case RevalidationOutcome.Unreachable:
                    // Ask again after a short pause rather than on every request while the origin is down.
                    entry.ValidatedAt = Environment.TickCount64 - (long)_options.RevalidateAfter.TotalMilliseconds
                        + (long)Math.Min(_options.RevalidateAfter.TotalMilliseconds, 5000);
                    entry.Stale = true;
                    break;
                default:
                    if (!entry.Removed)
                    {
                        RemoveLocked(entry);
                        drop = true;
                    }
                    break;
            }
        }
        switch (result.Outcome)
        {
            case RevalidationOutcome.Changed:
                Interlocked.Increment(ref _counters.RevalidationsChanged);
                _log.Information("{Name} changed at the origin; fetching the new version", entry.Name);
                break;
            case RevalidationOutcome.Gone:
                _log.Information("{Name} is gone from the origin; dropped from the cache", entry.Name);
                break;
            case RevalidationOutcome.Unreachable when _options.ServeStaleOnError:
                _log.Warning("Origin unreachable while revalidating {Name} ({Reason}); serving the cached copy, which may be stale",
                    entry.Name, result.Reason);
                break;
        }
        if (drop)
        {
            DeleteIfUnread(entry);
        }
        if (confirmed && !_store.MarkConfirmed(entry.Key))
        {
            _log.Debug("Cannot record when {Name} was confirmed; it is confirmed again after a restart", entry.Name);
        }
        return result;
    }

    /// <summary>Opens a committed entry's file for one response (sent with sendfile), or null when it left the
    /// index meanwhile.</summary>
    private CachedFileBody? OpenEntry(CacheEntry entry, ByteRange range)
    {
        if (!Pin(entry))
        {
            return null;
        }
        try
        {
            return new CachedFileBody(FileRegionBody.OpenShared(entry.DataPath), range.Offset, range.Length, () => Release(entry));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Error(e, "Cached file {Path} for {Name} cannot be opened; dropping the entry", entry.DataPath, entry.Label);
            lock (_lock)
            {
                RemoveLocked(entry);
            }
            Release(entry);
            return null;
        }
    }

    /// <summary>
    /// A range of a small entry, from its copy in memory, which the first read makes while the budget has room (else
    /// the range is read from the file, as a larger entry's is). Null when the entry left the index meanwhile.
    /// </summary>
    private IResponseBody? FromMemory(CacheEntry entry, ByteRange range)
    {
        SmallBody? whole;
        bool room;
        lock (_lock)
        {
            if (entry.Removed)
            {
                return null;
            }
            _lru.Remove(entry.LruNode);
            _lru.AddFirst(entry.LruNode);
            whole = entry.InMemory;
            room = _bytesInMemory + entry.Size <= InMemoryBudgetBytes;
        }
        if (whole is null)
        {
            if (!room)
            {
                return ReadSmall(entry, range);
            }
            using var read = ReadSmall(entry, new ByteRange(0, entry.Size));
            if (read is null)
            {
                return null;
            }
            whole = new SmallBody(read.Memory.ToArray());
            lock (_lock)
            {
                if (entry.InMemory is { } first)
                {
                    whole = first; // a racing request made it first
                }
                else if (!entry.Removed && _bytesInMemory + whole.Length <= InMemoryBudgetBytes)
                {
                    entry.InMemory = whole;
                    _bytesInMemory += whole.Length;
                }
            }
        }
        return whole.Slice(range.Offset, range.Length);
    }

    /// <summary>
    /// Reads a small range into memory through the entry's shared descriptor: no open, fstat and close per request,
    /// and the entry is free again before the response is sent. Null when the entry left the index meanwhile.
    /// </summary>
    private MemoryBody? ReadSmall(CacheEntry entry, ByteRange range)
    {
        if (!Pin(entry))
        {
            return null;
        }
        var body = new MemoryBody((int)range.Length);
        try
        {
            var handle = SharedHandle(entry);
            var done = 0;
            while (done < range.Length)
            {
                var read = RandomAccess.Read(handle, body.Memory.Span[done..], range.Offset + done);
                if (read == 0)
                {
                    throw new IOException($"cached file is shorter than its recorded {entry.Size} bytes");
                }
                done += read;
            }
            return body;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            body.Dispose();
            _log.Error(e, "Cached file {Path} for {Name} cannot be read; dropping the entry", entry.DataPath, entry.Label);
            lock (_lock)
            {
                RemoveLocked(entry);
            }
            return null;
        }
        finally
        {
            Release(entry);
        }
    }

    /// <summary>The entry's descriptor shared by small reads, opened on first use; closed with the entry.</summary>
    private Microsoft.Win32.SafeHandles.SafeFileHandle SharedHandle(CacheEntry entry)
    {
        lock (_lock)
        {
            return entry.SharedHandle ??= System.IO.File.OpenHandle(entry.DataPath, FileMode.Open, FileAccess.Read,
                FileShare.ReadWrite | FileShare.Delete);
        }
    }

    /// <summary>Marks an entry as being read (never evicted meanwhile) and most recently used; false when it left
    /// the index.</summary>
    private bool Pin(CacheEntry entry)
    {
        lock (_lock)
        {
            if (entry.Removed)
            {
                return false;
            }
            entry.Readers++;
            _lru.Remove(entry.LruNode);
            _lru.AddFirst(entry.LruNode);
            return true;
        }
    }

    private Task<bool> EnsureLoadedAsync(CacheEntry entry, SafeName name)
    {
        lock (_lock)
        {
            return entry.Loading ??= LoadAsync(entry, name);
        }
    }

    /// <summary>
    /// Reads and checks an entry found on disk at start-up, on its first use (once, shared by concurrent requests):
    /// its metadata must name this file, its data file and that file's size, and the data must hash to the recorded
    /// digest. This also catches data that never reached the disk before a power cut. A failing entry is dropped
    /// (never served) and false returned.
    /// </summary>
    private async Task<bool> LoadAsync(CacheEntry entry, SafeName name)
    {
        await Task.Yield();
        EntryRecord? record = null;
        var valid = false;
        try
        {
            record = EntryRecord.TryParse(await System.IO.File.ReadAllTextAsync(_store.MetaPath(entry.Key)));
            valid = record is not null && record.Name == name.Value && record.File.Size == entry.Size
                && record.DataFileName == Path.GetFileName(entry.DataPath)
                && await DigestOfAsync(entry.DataPath) == record.File.Digest;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("Cannot read cache entry for {Name}: {Reason}", name, e.Message);
        }
        lock (_lock)
        {
            if (entry.Removed)
            {
                return false;
            }
            if (valid)
            {
                entry.Load(name, record!.File);
                return true;
            }
            RemoveLocked(entry);
        }
        _log.Warning("Cache entry for {Name} is damaged (metadata or digest does not match its data); dropped", name);
        DeleteIfUnread(entry);
        return false;
    }

    private static async Task<ContentDigest> DigestOfAsync(string path)
    {
        using var handle = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete,
            FileOptions.SequentialScan);
        return (await ContentDigest.OfFileAsync(handle)).Digest;
    }

    private void Release(CacheEntry entry)
    {
        bool overCap;
        lock (_lock)
        {
            entry.Readers--;
            overCap = _bytesCached > _options.MaxBytes;
        }
        DeleteIfUnread(entry);
        if (overCap)
        {
            MakeRoom(0); // entries that were being read when the cap was passed can go now
        }
    }

    /// <summary>Deletes a removed entry's files once nobody reads them. Its metadata goes too unless a newer entry
    /// for the same name has taken its place.</summary>
    private void DeleteIfUnread(CacheEntry entry)
    {
        lock (_lock)
        {
            if (!entry.Removed || entry.Readers > 0)
            {
                return;
            }
            entry.Readers = -1; // deleted: never again
        }
        entry.SharedHandle?.Dispose();
        lock (DiskLock(entry.Key))
        {
            bool replaced;
            lock (_lock)
            {
                replaced = _entries.ContainsKey(entry.Key);
            }
            if (replaced)
            {
                _store.DeleteData(entry.DataPath);
            }
            else
            {
                _store.Delete(entry.Key, entry.DataPath);
            }
        }
    }

    /// <summary>Serializes the disk changes of one key (commit, delete) so that metadata of a newer entry is never
    /// deleted for an older one.</summary>
    private object DiskLock(string key) => _diskLocks[Convert.ToInt32(key[..2], 16) % _diskLocks.Length];

    /// <summary>Takes an entry out of the index. Call under the lock.</summary>
    private void RemoveLocked(CacheEntry entry)
    {
        if (entry.Removed)
        {
            return;
        }
        entry.Removed = true;
        if (_entries.TryGetValue(entry.Key, out var current) && current == entry)
        {
            _entries.Remove(entry.Key);
        }
        _lru.Remove(entry.LruNode);
        _bytesCached -= entry.Size;
        if (entry.InMemory is { } held)
        {
            entry.InMemory = null; // responses already holding it finish with it
            _bytesInMemory -= held.Length;
        }
    }

    private static ResponseHead VersionMismatch(FileMetadata file, GetRequest request) =>
        ResponseHead.Error(StatusCode.VersionMismatch, $"file changed: version is {file.Version}, request asked for {request.IfVersion}");

    /// <summary>An upstream's error answer, passed on with its status and a note of where it came from.</summary>
    private static ResponseHead Relay(ResponseHead head) => ResponseHead.Error(head.Status, $"origin: {head.Message}");

    private ResponseHead Unreachable(SafeName name, Exception e)
    {
        Interlocked.Increment(ref _counters.UpstreamFailures);
        _log.Warning("Origin unreachable for {Name}: {Reason}", name, e.Message);
        return ResponseHead.Error(StatusCode.UpstreamUnavailable, $"origin unreachable: {e.Message}");
    }
}
