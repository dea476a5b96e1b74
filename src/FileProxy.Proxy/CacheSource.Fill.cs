using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;

namespace FileProxy.Proxy;

public sealed partial class CacheSource
{
    /// <summary>Joins the running fill for <paramref name="name"/>, or starts one. Returns null when the name was
    /// committed meanwhile (look it up again); Bypass when a request with the hop mark met a fill that may be
    /// fetched from another peer (serve it from the origin instead: a forwarded request is never forwarded).</summary>
    private (Fill? Fill, bool Started, bool Bypass) JoinOrStartFill(SafeName name, string key, bool forwarded)
    {
        Fill fill;
        Task<Task> start;
        lock (_lock)
        {
            if (_entries.ContainsKey(key))
            {
                return (null, false, false);
            }
            if (_fills.TryGetValue(name.Value, out var running))
            {
                if (forwarded && running.MayForward)
                {
                    _tier!.CountBypass();
                    return (null, false, true);
                }
                running.Pin();
                Interlocked.Increment(ref _counters.Coalesced);
                return (running, false, false);
            }
            fill = new Fill(name, key, _store.NewTempPath(key)) { MayForward = MayForward(name, forwarded) };
            fill.Pin();
            _fills[name.Value] = fill;
            Interlocked.Increment(ref _counters.Misses);
            // Counted as running from here (DisposeAsync waits for it), started below, outside the lock.
            start = new Task<Task>(() => RunFillAsync(fill));
            var task = start.Unwrap();
            _runningFills.Add(task);
            _ = task.ContinueWith(done =>
            {
                lock (_lock)
                {
                    _runningFills.Remove(done);
                }
            }, TaskScheduler.Default);
        }
        // On this request's own flow up to the fill's first wait (its upstream request sent): a hop to the thread pool
        // here put a worker's wake-up on every cold miss's first byte.
        fill.StartingInline = true;
        start.RunSynchronously(TaskScheduler.Default);
        fill.StartingInline = false;
        return (fill, true, false);
    }

    /// <summary>Answers a GET from a fill (holding one pin, which the body or this method gives back).</summary>
    private async ValueTask<SourceResult> ReadFillAsync(Fill fill, bool started, GetRequest request, CancellationToken cancellationToken)
    {
        IResponseBody? body = null;
        var pinned = true;
        try
        {
            var upstreamHead = await fill.Head.WaitAsync(cancellationToken);
            if (!upstreamHead.IsOk)
            {
                return upstreamHead;
            }
            if (fill.TooLargeToCache)
            {
                await Task.Yield(); // off the fill's flow (Fill's head runs its waiters inline): this relays a whole file
                var wholeFile = request.Offset == 0 && request.Length >= (ulong)upstreamHead.File!.Size
                    && (request.IfVersion.Length == 0 || request.IfVersion == upstreamHead.File.Version);
                if (wholeFile && fill.TakeOffered() is { } offered)
                {
                    Interlocked.Increment(ref _counters.PassThrough);
                    return new SourceResult(offered.Response.Head with { Source = ResponseSource.PassThrough },
                        new UpstreamStreamBody(_upstream, offered.Client, offered.Response, offered.Slot));
                }
                // Not the offered answer's reader: let the fill go before waiting for a slot of our own. The offer holds
                // an upstream slot until the fill's last pin goes, so with every slot taken this reader would wait for
                // the one its own pin keeps.
                pinned = false;
                fill.Unpin();
                return await PassThroughAsync(fill.Name, request, fill.MayForward, cancellationToken);
            }
            var file = upstreamHead.File!;
            if (request.IfVersion.Length > 0 && request.IfVersion != file.Version)
            {
                return VersionMismatch(file, request);
            }
            if (!ByteRange.TryResolve(request.Offset, request.Length, file.Size, out var range))
            {
                return ByteRange.NotSatisfiable(request.Offset, file.Size);
            }
            // A request that pins a version belongs to a resume or a multipath transfer, whose client checks the whole
            // file's digest: it gets its range as written and waits only for the file's last byte. Any other request
            // gets its own last byte only once the whole file is verified.
            var holdFrom = request.IfVersion.Length > 0 ? file.Size - 1 : range.Offset + range.Length - 1;
            body = new GrowingFileBody(fill, range.Offset, range.Length, holdFrom,
                (offset, length, sink, token) => RelayRangeAsync(fill.Name, file, offset, length, sink, token));
            var head = new ResponseHead(StatusCode.Ok, "")
            {
                File = file,
                Offset = range.Offset,
                Length = range.Length,
                Source = started ? ResponseSource.CacheMiss : ResponseSource.CacheCoalesced,
            };
            return new SourceResult(head, body);
        }
        finally
        {
            if (body is null && pinned)
            {
                fill.Unpin();
            }
        }
    }

    /// <summary>Relays a file straight from the upstream, uncached: it is larger than the whole cache, or the tier
    /// relays it from its owner (<paramref name="mayForward"/>: the owning peer, else the origin).</summary>
    private async ValueTask<SourceResult> PassThroughAsync(SafeName name, GetRequest request, bool mayForward,
        CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _counters.PassThrough);
        Interlocked.Increment(ref _counters.UpstreamFetches);
        FileClient? client = null;
        var slot = await UpstreamSlotAsync(cancellationToken);
        try
        {
            GetResponse response;
            for (var attempt = 0; ; attempt++)
            {
                client = await RentUpstreamAsync(name, mayForward, cancellationToken);
                try
                {
                    response = await client.GetAsync(request with { Name = name.Value, Forwarded = false }, cancellationToken);
                    break;
                }
                catch (UpstreamException e) when (TryAgain(client, e, attempt))
                {
                    // A pooled connection that went away, or a peer now marked down: once more, on a fresh connection
                    // or from the next peer (or the origin).
                    await ConnectionFailedAsync(client);
                    await client.DisposeAsync();
                    client = null;
                }
            }
            if (!response.Head.IsOk)
            {
                await _upstream.ReturnAsync(client);
                slot.Release();
                return Relay(response.Head);
            }
            var head = response.Head with { Source = ResponseSource.PassThrough };
            return new SourceResult(head, new UpstreamStreamBody(_upstream, client, response, slot));
        }
        catch (Exception e)
        {
            // Whatever failed, the slot and the connection are ours to give back; only an unreachable upstream is an
            // answer, anything else goes on up.
            slot.Release();
            if (client is not null)
            {
                await client.DisposeAsync();
            }
            if (e is not UpstreamException unreachable)
            {
                throw;
            }
            return Unreachable(name, unreachable);
        }
    }

    /// <summary>Sends bytes of one version of a file straight from the upstream, for readers of a fill that could
    /// not be kept. A different version at the upstream cuts the response (the reader's digest check would fail).</summary>
    private async ValueTask<CopyOutcome> RelayRangeAsync(SafeName name, FileMetadata file, long offset, long length, IBodySink sink,
        CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _counters.UpstreamFetches);
        FileClient? client = null;
        UpstreamSlot? slot = null;
        try
        {
            slot = await UpstreamSlotAsync(cancellationToken);
            client = await _upstream.RentAsync(cancellationToken);
            await using var response = await client.GetAsync(
                new GetRequest(name.Value, (ulong)offset, (ulong)length, file.Version), cancellationToken);
            if (!response.Head.IsOk)
            {
                return CopyOutcome.UpstreamFailed(new IOException(
                    $"continuing '{name}' from the upstream failed: {response.Head.Status}: {response.Head.Message}"));
            }
            return await BodyCopy.CopyAsync(response.ReadAsync, sink, cancellationToken);
        }
        catch (OperationCanceledException e)
        {
            return new CopyOutcome(CopyResult.Canceled, e);
        }
        catch (UpstreamException e)
        {
            return CopyOutcome.UpstreamFailed(new IOException($"continuing '{name}' from the upstream failed: {e.Message}", e));
        }
        finally
        {
            if (client is not null)
            {
                await _upstream.ReturnAsync(client);
            }
            slot?.Release();
        }
    }

    /// <summary>Waits for one of the upstream slots (<c>--max-fills</c>) for work outside a fill: a pass-through, a
    /// revalidation, a STAT, a reader continuing from the upstream. Beyond the bound, requests queue.</summary>
    private ValueTask<UpstreamSlot> UpstreamSlotAsync(CancellationToken cancellationToken) =>
        UpstreamSlot.AcquireAsync(_fillSlots, () => Interlocked.Increment(ref _counters.UpstreamQueued), cancellationToken);

    /// <summary>Fetches a whole file from the upstream into the fill's temporary file, verifies its length and
    /// digest, and commits it. Whatever happens, the fill leaves the index, ends once and logs once: its readers
    /// hear the outcome from the fill, not from a log line each.</summary>
    private async Task RunFillAsync(Fill fill)
    {
        var token = _shutdown.Token;
        FileClient? client = null;
        try
        {
            // At most MaxConcurrentFills fetches run at once; the rest wait here holding no file, buffer or socket.
            await fill.AcquireSlotAsync(_fillSlots, () => Interlocked.Increment(ref _counters.FillsQueued), token);
            Interlocked.Increment(ref _counters.UpstreamFetches);
            FileMetadata metadata;
            ContentDigest digest;
            // Over the origin's addresses when the fill is for the origin: a name another peer of the tier owns
            // comes from that peer, over one connection, unless the peer is down by now.
            if (_options.Multipath is { } multipath && !(fill.MayForward && MayForward(fill.Name, forwarded: false)))
            {
                if (await FetchOverPathsAsync(fill, multipath, token) is not { } fetched)
                {
                    return;
                }
                (metadata, digest) = fetched;
            }
            else
            {
                GetResponse response;
                (client, response) = await RequestWholeFileAsync(fill.Name, fill.MayForward, token);
                var head = response.Head;
                if (!head.IsOk)
                {
                    Retire(fill).Fail(Relay(head));
                    return;
                }
                metadata = head.File!;
                if (head.Offset != 0 || head.Length != metadata.Size)
                {
                    throw new UpstreamException($"upstream answered a whole-file GET with range {head.Offset}+{head.Length} of {metadata.Size}");
                }
                if (!Fits(fill, metadata))
                {
                    Retire(fill).PassThrough(head, client, response);
                    client = null; // the fill owns it now, until a reader takes it
                    return;
                }
                MakeRoom(0); // this fill's size is in the reservations already

                if (TryCreateFile(fill, preallocate: 0) is not { } handle)
                {
                    Retire(fill).PassThrough(head, client, response);
                    client = null; // the fill owns it now, until a reader takes it
                    return;
                }
                fill.Started(head);
                if (fill.StartingInline)
                {
                    // The upstream answered before the starting request got to wait for it: off that request's flow,
                    // which sends its head and first bytes, instead of carrying the copy until the ring is full
                    // (under strace -f -tt the head went out 42 ms after the upstream's came back; 4.3 ms with this).
                    await Task.Yield();
                }
                using var hash = new ContentHasher();
                var (copied, outcome) = await BodyCopier.TrySpliceToFileAsync(response, handle, 0, hash, fill.Advance, token);
                switch (outcome.Result)
                {
                    case CopyResult.DownstreamWriteFailed:
                        // The disk filled or failed, the upstream did not: readers finish from the upstream, uncached.
                        Abandon(fill, outcome.Error!);
                        return;
                    case CopyResult.UpstreamReadFailed or CopyResult.Canceled:
                        FailFromUpstream(fill, outcome.Error!);
                        return;
                }
                Interlocked.Add(ref _counters.BytesFetched, copied);
                await _upstream.ReturnAsync(client);
                client = null;
                if (copied != metadata.Size)
                {
                    throw new UpstreamException($"upstream sent {copied} of {metadata.Size} bytes");
                }
                digest = hash.Finish();
            }
            if (digest != metadata.Digest)
            {
                _log.Error("{Name}: upstream bytes hash to {Actual}, it announced {Announced}; not caching", fill.Name, digest, metadata.Digest);
                Interlocked.Increment(ref _counters.UpstreamFailures);
                Retire(fill).Fail(ResponseHead.Error(StatusCode.UpstreamIntegrityError, "upstream sent bytes that do not match their digest"));
                return;
            }
            CacheEntry? committed = null;
            try
            {
                committed = fill.Purged ? null : Commit(fill, metadata);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The bytes are whole and verified, and every reader sends from the fill's descriptor: serve them,
                // keep nothing (the store rolled its files back).
                _log.Warning("Committing {Name} to the cache failed ({Reason}); serving it uncached", fill.Name, e.Message);
                Retire(fill);
            }
            fill.Complete();
            if (_options.Fsync && committed is not null)
            {
                // After the commit, off the readers' path: an entry whose data did not reach the disk before a
                // power cut fails its digest check when it is first used after the restart, and is dropped.
                try
                {
                    await Task.Run(fill.FlushToDisk, CancellationToken.None);
                }
                catch (IOException e)
                {
                    // The readers have their bytes (they send from the fill's descriptor), the disk may not: the fill
                    // stays complete, the cache keeps nothing.
                    _log.Warning("Writing {Name} to the disk failed ({Reason}); dropped from the cache", fill.Name, e.Message);
                    lock (_lock)
                    {
                        RemoveLocked(committed);
                    }
                    DeleteIfUnread(committed);
                }
            }
        }
        catch (Exception e) when (e is UpstreamException or MultipathException or IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            FailFromUpstream(fill, e);
        }
        catch (Exception e)
        {
            _log.Error(e, "Fill of {Name} failed unexpectedly", fill.Name);
            Retire(fill).Fail(ResponseHead.Error(StatusCode.InternalError, "internal error in the proxy; see its log"));
        }
        finally
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }
            Retire(fill).EndRun(_store);
        }
    }

    /// <summary>Ends a fill that failed, with one Warning for the fill (its readers only see their responses cut).</summary>
    private void FailFromUpstream(Fill fill, Exception e)
    {
        Interlocked.Increment(ref _counters.UpstreamFailures);
        var reason = e is OperationCanceledException ? "proxy is shutting down" : e.Message;
        _log.Warning("Fetching {Name} from the origin failed: {Reason}", fill.Name, reason);
        var upstream = e is UpstreamException or MultipathException or OperationCanceledException;
        Retire(fill).Fail(ResponseHead.Error(upstream ? StatusCode.UpstreamUnavailable : StatusCode.InternalError,
            upstream ? $"origin fetch failed: {reason}" : "proxy cannot store the file; see its log"));
    }

    /// <summary>The disk failed under a running fill, not the upstream: the cache gives up its copy, and readers
    /// send what is written and continue from the upstream, uncached.</summary>
    private void Abandon(Fill fill, Exception e)
    {
        Interlocked.Increment(ref _counters.FillsAbandoned);
        _log.Warning("Writing {Name} to the cache failed after {Bytes} bytes ({Reason}); its readers continue from the origin, uncached",
            fill.Name, fill.Written, e.Message);
        Retire(fill).Abandon(e.Message);
    }

    /// <summary>Takes a fill out of the index before it announces its end, so no request joins a fill that has
    /// already failed (it starts a fresh one instead).</summary>
    private Fill Retire(Fill fill)
    {
        lock (_lock)
        {
            if (_fills.TryGetValue(fill.Name.Value, out var current) && current == fill)
            {
                _fills.Remove(fill.Name.Value);
            }
        }
        return fill;
    }

    /// <summary>Sends a whole-file GET, tried again as <see cref="TryAgain"/> says (a stale pooled
    /// connection, a peer marked down).</summary>
    private async Task<(FileClient, GetResponse)> RequestWholeFileAsync(SafeName name, bool mayForward, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var client = await RentUpstreamAsync(name, mayForward, cancellationToken);
            try
            {
                return (client, await client.GetAsync(new GetRequest(name.Value), cancellationToken));
            }
            catch (UpstreamException e) when (TryAgain(client, e, attempt))
            {
                await ConnectionFailedAsync(client);
                await client.DisposeAsync();
            }
            catch
            {
                await client.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Moves a verified fill into the cache and the index, replacing an older version of the name. Null
    /// when a purge came first (nothing is kept).</summary>
    private CacheEntry? Commit(Fill fill, FileMetadata metadata)
    {
        var record = new EntryRecord(fill.Name.Value, metadata, $"{fill.Key}.{Guid.NewGuid():N}.data",
            DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        CacheEntry? replaced = null;
        CacheEntry entry;
        lock (DiskLock(fill.Key))
        {
            if (fill.Purged)
            {
                // Purged before its metadata is written: a fill the purge let start may have committed the name since,
                // and its metadata must stay.
                return null;
            }
            var dataPath = fill.CommitTo(_store, record);
            entry = new CacheEntry(fill.Name, fill.Key, metadata, dataPath, Environment.TickCount64);
            lock (_lock)
            {
                if (fill.Purged)
                {
                    // Purged between the check before the commit and here: keep nothing after all.
                    _store.Delete(fill.Key, dataPath);
                    return null;
                }
                if (_entries.TryGetValue(fill.Key, out replaced))
                {
                    RemoveLocked(replaced);
                }
                _entries[fill.Key] = entry;
                _lru.AddFirst(entry.LruNode);
                _bytesCached += metadata.Size;
                Retire(fill);
            }
        }
        if (replaced is not null)
        {
            DeleteIfUnread(replaced);
        }
        MakeRoom(0, keep: entry); // never the entry just committed: over the cap only while older ones are read
        return entry;
    }

    /// <summary>Evicts least recently used entries nobody is reading until <paramref name="incoming"/> more bytes
    /// fit under the cap (or nothing more can go).</summary>
    private void MakeRoom(long incoming, CacheEntry? keep = null)
    {
        List<CacheEntry> evicted = [];
        lock (_lock)
        {
            var reserved = _fills.Values.Sum(f => f.Reserved);
            var node = _lru.Last;
            while (node is not null && _bytesCached + reserved + incoming > _options.MaxBytes)
            {
                var previous = node.Previous;
                if (node.Value.Readers == 0 && node.Value != keep)
                {
                    evicted.Add(node.Value);
                    RemoveLocked(node.Value);
                }
                node = previous;
            }
        }
        foreach (var entry in evicted)
        {
            Interlocked.Increment(ref _counters.Evictions);
            _log.Debug("Evicted {Name} ({Bytes} bytes)", entry.Label, entry.Size);
            DeleteIfUnread(entry);
        }
    }

    /// <summary>Disk bytes that running fills still have to write. Under <see cref="_lock"/>.</summary>
    private long ReservedLocked() => _fills.Values.Sum(f => f.Outstanding);
}
