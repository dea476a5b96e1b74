using FileProxy.Protocol;
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

    public void Advance(long written)
    {
        Volatile.Write(ref _written, written);
        Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    public void Complete() => End(FillState.Complete, "");

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
        }
    }

    private void End(FillState state, string reason)
    {
        FailureReason = reason;
        _state = state;
        Interlocked.Exchange(ref _progress, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }
}

internal enum FillState
{
    Running,
    /// <summary>Verified and committed: readers may send their last byte, and the entry is in the index.</summary>
    Complete,
    Failed,
}
