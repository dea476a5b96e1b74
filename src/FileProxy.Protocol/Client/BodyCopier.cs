using System.Buffers;
using System.Runtime.ExceptionServices;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Protocol.Client;

/// <summary>
/// Copies a GET body into a file at the wire's pace. The caller's flow receives into small pooled slices (sized
/// like a socket's receive: a few of them fit in a core's cache) and queues them; one drainer at a time takes
/// them in order, hashes each and writes it while it is still in the cache, and gives it back. Receiving and
/// hashing run at once, on two cores; there is no thread hop per slice: the drainer is one thread-pool work item
/// that runs for as long as slices are queued, and the receiver waits for room only when the drainer is a quarter
/// of the ring behind. The first slice (<see cref="FirstSliceBytes"/>, what has arrived) is hashed and written on
/// the caller's flow before the ring starts, so the first bytes reach the file without a thread hop. Used by the
/// client's download and the proxy's cache fill.
/// </summary>
public static partial class BodyCopier
{
    /// <summary>Size of the single buffers that other copies use (a block of a cache read, a stream copy).</summary>
    public const int BlockBytes = 1024 * 1024;

    /// <summary>One slice: a receive, a hash update and a write. A cache fill's bytes pass through three system
    /// calls and the hasher per slice, and BLAKE3 runs its wide paths on long updates: 512 KiB slices took a cold
    /// 1 GiB fill from 1.47 to 1.27 CPU-seconds in the proxy against 128 KiB ones (scripts/measure-cold-miss.sh).</summary>
    internal const int SliceBytes = 512 * 1024;

    /// <summary>Slices in flight: 2 MiB, enough for the receiver to run on while the drainer writes.</summary>
    internal const int Slices = 4;

    /// <summary>The ring's first slice, copied on the receiver's flow with what has arrived, up to this much: a
    /// cache fill's readers get their first byte without waiting for a whole slice to be received and for the
    /// drainer's thread to be scheduled.</summary>
    internal const int FirstSliceBytes = 64 * 1024;

    /// <summary>Copies the rest of <paramref name="response"/>'s body to <paramref name="file"/> from
    /// <paramref name="fileOffset"/>, feeding <paramref name="hash"/> in order. <paramref name="written"/> is called
    /// with the file length written so far, in order, after each slice is in the file. Throws what
    /// <see cref="TryCopyToFileAsync(GetResponse, SafeFileHandle, long, ContentHasher?, Action{long}?, CancellationToken)"/> returns as a failure.</summary>
    public static Task<long> CopyToFileAsync(GetResponse response, SafeFileHandle file, long fileOffset,
        ContentHasher? hash, Action<long>? written, CancellationToken cancellationToken) =>
        CopyToFileAsync(response, file, fileOffset, hash, written, Slices, SliceBytes, cancellationToken);

    /// <summary>Like <see cref="CopyToFileAsync(GetResponse, SafeFileHandle, long, ContentHasher?, Action{long}?, CancellationToken)"/>
    /// with at most <paramref name="slices"/> slices of <paramref name="sliceBytes"/> in flight. One slice (or
    /// fewer) copies inline: the caller's flow receives a slice, hashes it and writes it, then receives the next,
    /// with no drainer and no thread hop; the socket's receive buffer is what overlaps the wire with the copy.</summary>
    public static async Task<long> CopyToFileAsync(GetResponse response, SafeFileHandle file, long fileOffset,
        ContentHasher? hash, Action<long>? written, int slices, int sliceBytes, CancellationToken cancellationToken)
    {
        var (copied, outcome) = await TryCopyToFileAsync(response, file, fileOffset, hash, written, slices, sliceBytes, cancellationToken);
        if (outcome.Error is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }
        return copied;
    }

    /// <summary>Like <see cref="CopyToFileAsync(GetResponse, SafeFileHandle, long, ContentHasher?, Action{long}?, CancellationToken)"/>, saying how the copy ended instead of throwing: the upstream
    /// failed (<see cref="UpstreamException"/>), the file could not be written (the disk filled), or it was
    /// cancelled. Returns the body bytes received.</summary>
    public static Task<(long Bytes, CopyOutcome Outcome)> TryCopyToFileAsync(GetResponse response, SafeFileHandle file,
        long fileOffset, ContentHasher? hash, Action<long>? written, CancellationToken cancellationToken) =>
        TryCopyToFileAsync(response, file, fileOffset, hash, written, Slices, SliceBytes, cancellationToken);

    private static async Task<(long Bytes, CopyOutcome Outcome)> TryCopyToFileAsync(GetResponse response, SafeFileHandle file,
        long fileOffset, ContentHasher? hash, Action<long>? written, int slices, int sliceBytes, CancellationToken cancellationToken)
    {
        if (slices <= 1)
        {
            return await CopyInlineAsync(response, file, fileOffset, hash, written, Math.Max(sliceBytes, 1), cancellationToken);
        }
        // Slices are rented only once bytes are there to read, and given back whenever the sender goes quiet: a
        // thousand stalled fills hold no buffers, only their sockets.
        var pipe = new Pipeline(file, fileOffset, hash, written, Math.Max(slices, 1), Math.Max(sliceBytes, 1));
        long received = 0;
        var reading = false;
        try
        {
            if (response.Remaining > 0)
            {
                reading = true;
                if (!response.HasBufferedBytes)
                {
                    await response.WaitForBytesAsync(cancellationToken);
                }
                reading = false;
                var first = await pipe.TakeAsync(cancellationToken);
                reading = true;
                var read = await FillAsync(response, first, Math.Min(FirstSliceBytes, sliceBytes), cancellationToken);
                reading = false;
                received += read;
                pipe.CopyNow(first, read);
            }
            while (true)
            {
                reading = true;
                if (!response.HasBufferedBytes && response.Remaining > 0)
                {
                    pipe.GiveBackIdle();
                    await response.WaitForBytesAsync(cancellationToken);
                }
                reading = false;
                var slice = await pipe.TakeAsync(cancellationToken);
                reading = true;
                var read = await FillAsync(response, slice, sliceBytes, cancellationToken);
                reading = false;
                if (read == 0)
                {
                    pipe.Release(slice);
                    break;
                }
                received += read;
                pipe.Submit(slice, read);
            }
            await pipe.DrainedAsync(cancellationToken);
            return (received, CopyOutcome.Success);
        }
        catch (Exception e) when (e is UpstreamException or IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            if (e is UpstreamException)
            {
                // The peer went away, or went silent: what did arrive still goes into the file, so that a retry or
                // a resume goes on from the last byte received (the file's length and the hash agree on it).
                await pipe.IdleAsync();
            }
            // The upstream's failures surface while reading; the drainer's (the file's) in the pipeline's calls.
            return (received, reading && e is not UnauthorizedAccessException ? CopyOutcome.UpstreamFailed(e) : CopyOutcome.DownstreamFailed(e));
        }
        finally
        {
            await pipe.StopAsync();
        }
    }

    /// <summary>The inline copy writes its output in pieces of this size, as curl does (16 KiB). With one write per
    /// 512 KiB slice, 1 GiB warm hits to a file were bimodal: 0.84-0.95 s, or 1.4-3.1 s with each write costing ten
    /// times the kernel CPU (7 of 8 fetches in one run); with 32 KiB pieces 1.01-1.25 s, never slow, and 16 KiB
    /// alike, while curl's stayed at 0.95-1.1 s (bench/run.sh workload u, docs/BENCHMARKS.md). The proxy's fill keeps
    /// whole slices: there 32 KiB pieces cost 1.12 → 1.27 CPU-s per cold GiB.</summary>
    private const int InlineWriteBytes = 32 * 1024;

    /// <summary>One slice, received, hashed and written in turn on the caller's flow. For a process that copies
    /// one body at a time (the client): a 1 GiB warm hit took 0.78 CPU-seconds this way against 1.30 through the
    /// ring of 4 × 128 KiB, and 10 MiB 17 ms against 22, at the same or lower peak RSS, because the ring's
    /// hand-offs between threads cost more than the overlap gave (docs/BENCHMARKS.md). A proxy's fill keeps the
    /// ring: there the upstream's receive and the cache file's write each take a core's share.</summary>
    private static async Task<(long Bytes, CopyOutcome Outcome)> CopyInlineAsync(GetResponse response, SafeFileHandle file,
        long fileOffset, ContentHasher? hash, Action<long>? written, int sliceBytes, CancellationToken cancellationToken)
    {
        sliceBytes = (int)Math.Clamp(response.Remaining, 1, sliceBytes);
        var buffer = ArrayPool<byte>.Shared.Rent(sliceBytes);
        long received = 0;
        var reading = false;
        try
        {
            while (true)
            {
                reading = true;
                var read = await FillAsync(response, buffer, sliceBytes, cancellationToken);
                reading = false;
                if (read == 0)
                {
                    return (received, CopyOutcome.Success);
                }
                Land(buffer.AsSpan(0, read), file, fileOffset + received, hash, written, InlineWriteBytes);
                received += read;
            }
        }
        catch (Exception e) when (e is UpstreamException or IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            return (received, reading && e is not UnauthorizedAccessException ? CopyOutcome.UpstreamFailed(e) : CopyOutcome.DownstreamFailed(e));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Hashes <paramref name="data"/> (the body's next bytes, in order), writes it to the file at
    /// <paramref name="position"/> and reports the file's new length.</summary>
    private static void Land(ReadOnlySpan<byte> data, SafeFileHandle file, long position, ContentHasher? hash, Action<long>? written,
        int writeBytes = int.MaxValue)
    {
        hash?.Append(data);
        var end = position + data.Length;
        for (; data.Length > writeBytes; data = data[writeBytes..], position += writeBytes)
        {
            RandomAccess.Write(file, data[..writeBytes], position);
        }
        RandomAccess.Write(file, data, position);
        written?.Invoke(end);
    }

    /// <summary>Reads until the slice is full or the body ends, but returns early rather than wait on a slow
    /// sender when some bytes are already in hand (so a fill's readers see bytes as they arrive).</summary>
    private static async ValueTask<int> FillAsync(GetResponse response, byte[] buffer, int sliceBytes, CancellationToken cancellationToken)
    {
        var filled = await response.ReadAsync(buffer.AsMemory(0, sliceBytes), cancellationToken);
        while (filled > 0 && filled < sliceBytes && response.Remaining > 0 && response.HasBufferedBytes)
        {
            var more = await response.ReadAsync(buffer.AsMemory(filled, sliceBytes - filled), cancellationToken);
            if (more == 0)
            {
                break;
            }
            filled += more;
        }
        return filled;
    }

    /// <summary>The ring of slices between the receiver and the drainer, under one lock.</summary>
    private sealed class Pipeline(SafeFileHandle file, long fileOffset, ContentHasher? hash, Action<long>? written, int slices, int sliceBytes)
    {
        private readonly Lock _gate = new();
        private readonly Queue<(byte[] Slice, int Count)> _queued = new(slices);
        private readonly Stack<byte[]> _free = new(slices);
        private long _position = fileOffset;
        private int _rented;
        private bool _draining;
        private bool _stopping;
        private ExceptionDispatchInfo? _failure;
        private TaskCompletionSource? _room;
        private TaskCompletionSource? _idle;

        /// <summary>A free slice: one given back, a new one while fewer than the ring's slices are out, else waits
        /// until the drainer has freed a quarter of the ring.</summary>
        public async ValueTask<byte[]> TakeAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                Task room;
                lock (_gate)
                {
                    _failure?.Throw();
                    if (_free.TryPop(out var slice))
                    {
                        return slice;
                    }
                    if (_rented < slices)
                    {
                        _rented++;
                        return ArrayPool<byte>.Shared.Rent(sliceBytes);
                    }
                    _room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    room = _room.Task;
                }
                await room.WaitAsync(cancellationToken);
            }
        }

        /// <summary>Hashes and writes a slice on the caller's flow, then gives it back; only before anything is
        /// queued.</summary>
        public void CopyNow(byte[] slice, int count)
        {
            try
            {
                if (count > 0)
                {
                    Land(slice.AsSpan(0, count), file, _position, hash, written);
                    _position += count;
                }
            }
            finally
            {
                Release(slice);
            }
        }

        /// <summary>Gives back a slice that was taken but not filled.</summary>
        public void Release(byte[] slice)
        {
            lock (_gate)
            {
                _free.Push(slice);
            }
        }

        /// <summary>Queues a filled slice; starts the drainer if it is not running.</summary>
        public void Submit(byte[] slice, int count)
        {
            lock (_gate)
            {
                _failure?.Throw();
                _queued.Enqueue((slice, count));
                if (_draining)
                {
                    return;
                }
                _draining = true;
            }
            ThreadPool.UnsafeQueueUserWorkItem(static pipe => pipe.Drain(), this, preferLocal: false);
        }

        /// <summary>Returns the slices nobody is using to the pool.</summary>
        public void GiveBackIdle()
        {
            lock (_gate)
            {
                while (_free.TryPop(out var slice))
                {
                    _rented--;
                    ArrayPool<byte>.Shared.Return(slice);
                }
            }
        }

        /// <summary>Waits until every queued slice is hashed and in the file; throws what the drainer met.</summary>
        public async Task DrainedAsync(CancellationToken cancellationToken)
        {
            await IdleAsync().WaitAsync(cancellationToken);
            lock (_gate)
            {
                _failure?.Throw();
            }
        }

        /// <summary>Stops the drainer after the slice it is on (the file is not touched after this returns) and
        /// gives every slice back.</summary>
        public async Task StopAsync()
        {
            lock (_gate)
            {
                _stopping = true;
            }
            await IdleAsync();
            lock (_gate)
            {
                while (_queued.TryDequeue(out var queued))
                {
                    _free.Push(queued.Slice);
                }
            }
            GiveBackIdle();
        }

        /// <summary>Completes once the drainer has nothing queued (or stopped on a failure of its own).</summary>
        public Task IdleAsync()
        {
            lock (_gate)
            {
                if (!_draining)
                {
                    return Task.CompletedTask;
                }
                _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                return _idle.Task;
            }
        }

        /// <summary>Hashes and writes the queued slices in order until none is left.</summary>
        private void Drain()
        {
            while (true)
            {
                (byte[] Slice, int Count) next;
                TaskCompletionSource? wake = null;
                lock (_gate)
                {
                    if (_stopping || _failure is not null || !_queued.TryDequeue(out next))
                    {
                        // Whoever waits (for room, or for the end) looks again: their continuations run elsewhere.
                        _draining = false;
                        _idle?.TrySetResult();
                        _room?.TrySetResult();
                        (_idle, _room) = (null, null);
                        return;
                    }
                }
                try
                {
                    Land(next.Slice.AsSpan(0, next.Count), file, _position, hash, written);
                    _position += next.Count;
                }
                catch (Exception e)
                {
                    lock (_gate)
                    {
                        _failure = ExceptionDispatchInfo.Capture(e);
                    }
                }
                lock (_gate)
                {
                    _free.Push(next.Slice);
                    if (_room is not null && (_free.Count >= Math.Max(slices / 4, 1) || _queued.Count == 0))
                    {
                        wake = _room;
                        _room = null;
                    }
                }
                wake?.TrySetResult();
            }
        }
    }
}
