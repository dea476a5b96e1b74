using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Proxy.Cache;

/// <summary>
/// One upstream fetch into a temporary file, shared by every request for the same name while it runs, and the one
/// owner of everything that fetch holds: its fill slot, its temporary file and the one descriptor every reader
/// sends from, its disk reservation, its readers (pins) and its commit or rollback. Readers follow
/// <see cref="Written"/>, the length already in the file, and wait for it to grow.
/// </summary>
/// <remarks>
/// Life: <see cref="AcquireSlotAsync"/>, then <see cref="CreateFile"/> (the temporary file), <see cref="Reserve"/>d
/// space, <see cref="Advance"/> as bytes land, then one end (<see cref="Complete"/>, <see cref="Abandon"/>,
/// <see cref="Fail"/> or a <see cref="PassThrough(ResponseHead)"/>). <see cref="EndRun"/> gives back the slot and
/// deletes the temporary file unless <see cref="CommitTo"/> moved it into the cache; the descriptor closes once the
/// last reader is done (<see cref="Unpin"/>), so a reader never needs the file's name.
/// </remarks>
internal sealed class Fill
{
    // The head and the first progress signal run their waiters inline, on the fill's own flow: a reader sends its
    // head and then its first bytes without a thread hop, and a hop waits for a core when both are busy with the
    // origin's send and the fill's receive (1 to 2 ms each on 2 cores; a cold miss's first byte took three). What a
    // reader does inline is bounded: a head sent, a first sendfile, then it waits again (a pass-through reader yields
    // first, CacheSource.ReadFillAsync). Later signals run their waiters on the thread pool, as any number of
    // readers may follow a long fill.
    private readonly TaskCompletionSource<ResponseHead> _head = new();
    private TaskCompletionSource _progress = new();
    private long _written;
    private bool _advanced;
    private int _pins = 1; // the fill's own, released by EndRun
    private volatile FillState _state;
    private Offer? _offered;
    private FileStream? _file;
    private UpstreamSlot? _slot;
    private bool _committed;
    private int _ran;

    public Fill(SafeName name, string key, string tempPath)
    {
        Name = name;
        Key = key;
        TempPath = tempPath;
    }

    public SafeName Name { get; }

    public string Key { get; }

    /// <summary>Where the bytes go until the commit moves them into the cache.</summary>
    public string TempPath { get; }

    /// <summary>The upstream's head: Ok with the file's metadata, or the error to relay to every reader.</summary>
    public Task<ResponseHead> Head => _head.Task;

    /// <summary>The file is not cached at all (too large, or no room on the disk): readers fetch it straight from
    /// the upstream instead.</summary>
    public bool TooLargeToCache { get; private set; }

    public long Written => Volatile.Read(ref _written);

    /// <summary>True while the fill runs on the flow of the request that started it, before that request has got
    /// to wait for the head (CacheSource.JoinOrStartFill).</summary>
    public bool StartingInline { get; set; }

    /// <summary>Disk space this fill counts on (its file's size once admitted, 0 before); what it has not written
    /// yet is held back from other fills' free-space checks.</summary>
    public long Reserved { get; private set; }

    /// <summary>Reserved bytes not written yet: what other fills must not count as free.</summary>
    public long Outstanding => Math.Max(0, Reserved - Written);

    /// <summary>Started by a request without the tier's hop mark, for a name another peer answers: it may fetch
    /// from that peer, so a request with the hop mark must not join it (CacheSource.Tier.cs).</summary>
    public bool MayForward { get; init; }

    /// <summary>Purged while running: serve the readers, commit nothing.</summary>
    public volatile bool Purged;

    public FillState State => _state;

    public string FailureReason { get; private set; } = "";

    /// <summary>Waits for one of the cache's upstream slots; the fill holds it until <see cref="EndRun"/>, or hands
    /// it on with its upstream connection to a pass-through reader. <paramref name="queued"/> runs first when none
    /// is free.</summary>
    public async ValueTask AcquireSlotAsync(SemaphoreSlim slots, Action queued, CancellationToken cancellationToken) =>
        _slot = await UpstreamSlot.AcquireAsync(slots, queued, cancellationToken);

    /// <summary>Counts <paramref name="bytes"/> of disk as this fill's. Under the cache's lock.</summary>
    public void Reserve(long bytes) => Reserved = bytes;

    /// <summary>Creates the temporary file, readable and writable, optionally with its whole size allocated at once
    /// (a multipath fill writes out of order). Throws IOException when the disk refuses (full, out of inodes).</summary>
    public SafeFileHandle CreateFile(long preallocate = 0)
    {
        var file = new FileStream(TempPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.ReadWrite | FileShare.Delete,
            BufferSize = 0,
            Options = FileOptions.Asynchronous, // sendfile wants it so
            PreallocationSize = preallocate,
        });
        _file = file; // disposed with the fill, also when the allocation below fails
        if (preallocate > 0)
        {
            RandomAccess.SetLength(file.SafeFileHandle, preallocate);
        }
        return file.SafeFileHandle;
    }

    /// <summary>The fill's one descriptor on its file, lent to every reader (sendfile and reads go by explicit
    /// offsets, so readers share it safely); a reader's pin keeps it open, and it follows the file through its
    /// rename into the cache. Readers never dispose it.</summary>
    public FileStream File => _file!;

    public void Started(ResponseHead head) => _head.TrySetResult(head);

    public void PassThrough(ResponseHead head)
    {
        TooLargeToCache = true;
        _head.TrySetResult(head);
    }

    /// <summary>Like <see cref="PassThrough(ResponseHead)"/>, offering the whole-file answer already open to the
    /// first reader that wants the whole file, so a file that does not fit costs one upstream GET, not two. The
    /// connection keeps the fill's upstream slot until the reader is done with it.</summary>
    public void PassThrough(ResponseHead head, FileClient client, GetResponse response)
    {
        _offered = new Offer(client, response, Interlocked.Exchange(ref _slot, null));
        PassThrough(head);
    }

    /// <summary>Takes the offered upstream answer (once, for one reader); null when taken or none.</summary>
    public Offer? TakeOffered() => Interlocked.Exchange(ref _offered, null);

    /// <summary>The file holds <paramref name="written"/> bytes now; wakes the readers waiting for them. Called in
    /// order, by one flow at a time.</summary>
    public void Advance(long written)
    {
        Volatile.Write(ref _written, written);
        Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        if (!_advanced)
        {
            // The first bytes just went out to the readers waiting from the start (inline, see _progress): give this
            // core away once, so that their clients, woken by those bytes, run before this flow takes the core back
            // for the rest of the file. On 2 cores busy with the origin's send and this receive, a woken client
            // otherwise waited for the end of a scheduler slice (a cold miss's first byte, interleaved medians at load
            // 8-12: 3.3-3.8 -> 2.0-2.4 ms; docs/BENCHMARKS.md).
            _advanced = true;
            Thread.Yield();
        }
    }

    /// <summary>Moves the verified temporary file into the cache (the commit point; <paramref name="store"/> rolls
    /// its own files back when it fails). Returns the data file's path.</summary>
    public string CommitTo(CacheStore store, EntryRecord record)
    {
        var dataPath = store.Commit(Key, TempPath, record);
        _committed = true;
        return dataPath;
    }

    /// <summary>Forces the committed bytes to the disk, through the fill's descriptor.</summary>
    public void FlushToDisk()
    {
        _file!.Flush(flushToDisk: true);
    }

    public void Complete() => End(FillState.Complete, "");

    /// <summary>The upstream is fine but the bytes cannot be kept (the disk filled, say): readers send what is
    /// written and fetch the rest from the upstream themselves, uncached.</summary>
    public void Abandon(string reason) => End(FillState.Abandoned, reason);

    public void Fail(ResponseHead error)
    {
        _head.TrySetResult(error);
        End(FillState.Failed, error.Message);
    }

    /// <summary>Waits until <see cref="Written"/> or <see cref="State"/> differs from what the caller saw.</summary>
    public async ValueTask WaitForChangeAsync(long seenWritten, FillState seenState, CancellationToken cancellationToken)
    {
        var signal = Volatile.Read(ref _progress); // before reading the values: no wake-up can be missed
        if (Written != seenWritten || _state != seenState)
        {
            return;
        }
        await signal.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Takes a pin that keeps the descriptor open. Only while the fill is in the cache's index, under its
    /// lock (the fill's own pin is still held then).</summary>
    public void Pin() => Interlocked.Increment(ref _pins);

    public void Unpin()
    {
        if (Interlocked.Decrement(ref _pins) == 0)
        {
            _file?.Dispose();
            if (TakeOffered() is { } unclaimed)
            {
                _ = unclaimed.Client.DisposeAsync().AsTask(); // completes at once: it closes the socket
                unclaimed.Slot?.Release();
            }
        }
    }

    /// <summary>The fetch is over, however it went (once): gives back the slot, takes back the temporary file unless
    /// it was committed (readers keep reading through the descriptor), and drops the fill's own pin.</summary>
    public void EndRun(CacheStore store)
    {
        if (Interlocked.Exchange(ref _ran, 1) != 0)
        {
            return;
        }
        Interlocked.Exchange(ref _slot, null)?.Release();
        if (!_committed)
        {
            // A disk gone read-only refuses even this: the next start empties tmp/, and the pin goes regardless.
            store.TryDelete(TempPath);
        }
        Unpin();
    }

    private void End(FillState state, string reason)
    {
        FailureReason = reason;
        _state = state;
        Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }
}

/// <summary>An upstream connection with a whole-file answer on it (and the upstream slot it holds), waiting for a
/// reader to take it.</summary>
internal sealed record Offer(FileClient Client, GetResponse Response, UpstreamSlot? Slot);

internal enum FillState
{
    Running,
    /// <summary>Verified and committed: readers may send their last byte, and the entry is in the index.</summary>
    Complete,
    Failed,
    /// <summary>Not cached after all (a local write failed): readers finish from the upstream.</summary>
    Abandoned,
}
