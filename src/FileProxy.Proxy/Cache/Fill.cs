using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Proxy.Cache;

/// <summary>
/// One upstream fetch into a temporary file, shared by every request for the same name while it runs. Readers
/// follow <see cref="Written"/>, the length already in the file, and wait for it to grow.
/// </summary>
internal sealed class Fill
{
    private readonly TaskCompletionSource<ResponseHead> _head = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _written;
    private int _pins = 1; // the fill's own, released when it ends
    private volatile FillState _state;
    private Offer? _offered;

    public Fill(SafeName name, string key)
    {
        Name = name;
        Key = key;
    }

    public SafeName Name { get; }

    public string Key { get; }

    /// <summary>The upstream's head: Ok with the file's metadata, or the error to relay to every reader.</summary>
    public Task<ResponseHead> Head => _head.Task;

    /// <summary>The file is larger than the whole cache: readers fetch it straight from the upstream instead.</summary>
    public bool TooLargeToCache { get; private set; }

    /// <summary>The temporary file, readable and writable; open while any pin is held.</summary>
    public SafeFileHandle? Handle { get; private set; }

    public long Written => Volatile.Read(ref _written);

    /// <summary>Disk space this fill counts on (its file's size once admitted, 0 before); what it has not written
    /// yet is held back from other fills' free-space checks.</summary>
    public long Reserved { get; set; }

    /// <summary>Started by a request without the tier's hop mark, for a name another peer answers: it may fetch
    /// from that peer, so a request with the hop mark must not join it (CacheSource.Tier.cs).</summary>
    public bool MayForward { get; init; }

    /// <summary>Purged while running: serve the readers, commit nothing.</summary>
    public volatile bool Purged;

    public FillState State => _state;

    public string FailureReason { get; private set; } = "";

    public void Started(SafeFileHandle handle, ResponseHead head)
    {
        Handle = handle;
        _head.TrySetResult(head);
    }

    public void PassThrough(ResponseHead head)
    {
        TooLargeToCache = true;
        _head.TrySetResult(head);
    }

    /// <summary>Like <see cref="PassThrough(ResponseHead)"/>, offering the whole-file answer already open to the
    /// first reader that wants the whole file, so a file that does not fit costs one upstream GET, not two.</summary>
    public void PassThrough(ResponseHead head, FileClient client, GetResponse response)
    {
        _offered = new Offer(client, response);
        PassThrough(head);
    }

    /// <summary>Takes the offered upstream answer (once, for one reader); null when taken or none.</summary>
    public Offer? TakeOffered() => Interlocked.Exchange(ref _offered, null);

    public void Advance(long written)
    {
        Volatile.Write(ref _written, written);
        Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
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

    /// <summary>Takes a pin that keeps <see cref="Handle"/> open. Only while the fill is in the cache's index,
    /// under its lock (the fill's own pin is still held then).</summary>
    public void Pin() => Interlocked.Increment(ref _pins);

    public void Unpin()
    {
        if (Interlocked.Decrement(ref _pins) == 0)
        {
            Handle?.Dispose();
            if (TakeOffered() is { } unclaimed)
            {
                _ = unclaimed.Client.DisposeAsync().AsTask(); // completes at once: it closes the socket
            }
        }
    }

    private void End(FillState state, string reason)
    {
        FailureReason = reason;
        _state = state;
        Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }
}

/// <summary>An upstream connection with a whole-file answer on it, waiting for a reader to take it.</summary>
internal sealed record Offer(FileClient Client, GetResponse Response);

internal enum FillState
{
    Running,
    /// <summary>Verified and committed: readers may send their last byte, and the entry is in the index.</summary>
    Complete,
    Failed,
    /// <summary>Not cached after all (a local write failed): readers finish from the upstream.</summary>
    Abandoned,
}
