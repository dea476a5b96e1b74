namespace FileProxy.Protocol.Client.Multipath;

/// <summary>One ranged GET's worth of a file; possibly asked of two subflows at once near the end.</summary>
internal sealed class Chunk(long offset, int length)
{
    public long Offset { get; } = offset;

    public int Length { get; } = length;

    public long End => Offset + Length;

    /// <summary>Claimed by the subflow whose copy is written to the file; any other copy is thrown away.</summary>
    public bool Claimed { get; set; }

    /// <summary>Written to the file.</summary>
    public bool Done { get; set; }

    /// <summary>Bit per subflow that has asked for this chunk and not finished or failed it.</summary>
    public int Owners { get; set; }

    public override string ToString() => $"{Offset}+{Length}";
}

/// <summary>
/// The shared queue of one multipath transfer: hands out chunks to whichever subflow is free (given-back chunks
/// first, then fresh ones from the front), duplicates the last unfinished chunks onto idle subflows, and tracks the
/// contiguous prefix of the file that is written. Thread-safe; every change wakes the waiters.
/// </summary>
internal sealed class ChunkScheduler
{
    private readonly Lock _lock = new();
    private readonly long _size;
    private readonly bool[] _enabled;
    private readonly Queue<Chunk> _order = new();   // every chunk handed out and not yet part of the prefix, by offset
    private readonly List<Chunk> _returned = [];     // given back by a failed subflow, by offset
    private long _cursor;
    private long _prefix;
    private Exception? _failure;
    private TaskCompletionSource _changed = NewSignal();

    public ChunkScheduler(long size, int subflows)
    {
        _size = size;
        _enabled = new bool[subflows];
    }

    /// <summary>Bytes from the start of the file that are written, with no hole.</summary>
    public long Prefix
    {
        get
        {
            lock (_lock)
            {
                return _prefix;
            }
        }
    }

    public bool Finished
    {
        get
        {
            lock (_lock)
            {
                return _prefix == _size || _failure is not null;
            }
        }
    }

    public Exception? Failure
    {
        get
        {
            lock (_lock)
            {
                return _failure;
            }
        }
    }

    /// <summary>Completes at the next change (a chunk handed back or written, a subflow enabled, the end).</summary>
    public Task Changed
    {
        get
        {
            lock (_lock)
            {
                return _changed.Task;
            }
        }
    }

    public void SetEnabled(int subflow, bool enabled)
    {
        lock (_lock)
        {
            _enabled[subflow] = enabled;
            SignalLocked();
        }
    }

    public bool IsEnabled(int subflow)
    {
        lock (_lock)
        {
            return _enabled[subflow];
        }
    }

    /// <summary>The next chunk for <paramref name="subflow"/>: a given-back one, else a fresh one of about
    /// <paramref name="preferredBytes"/>, else (the end is near) a copy of the lowest unfinished chunk that only one
    /// other subflow is fetching. False when the subflow is parked or there is nothing to do.</summary>
    public bool TryTake(int subflow, int preferredBytes, out Chunk chunk)
    {
        var bit = 1 << subflow;
        lock (_lock)
        {
            chunk = null!;
            if (!_enabled[subflow] || _failure is not null)
            {
                return false;
            }
            for (var i = 0; i < _returned.Count; i++)
            {
                if (!_returned[i].Claimed)
                {
                    chunk = _returned[i];
                    _returned.RemoveAt(i);
                    chunk.Owners |= bit;
                    return true;
                }
            }
            _returned.Clear();
            if (_cursor < _size)
            {
                var length = (int)Math.Min(preferredBytes, _size - _cursor);
                chunk = new Chunk(_cursor, length) { Owners = bit };
                _cursor += length;
                _order.Enqueue(chunk);
                return true;
            }
            foreach (var candidate in _order)
            {
                if (!candidate.Claimed && (candidate.Owners & bit) == 0 && int.PopCount(candidate.Owners) == 1)
                {
                    candidate.Owners |= bit;
                    chunk = candidate;
                    return true;
                }
            }
            return false;
        }
    }

    /// <summary>True if <paramref name="subflow"/>'s copy of the chunk is the one to write (no other copy was claimed).</summary>
    public bool TryClaim(int subflow, Chunk chunk)
    {
        lock (_lock)
        {
            chunk.Owners &= ~(1 << subflow);
            if (chunk.Claimed || _failure is not null)
            {
                return false;
            }
            chunk.Claimed = true;
            return true;
        }
    }

    /// <summary>The claimed chunk is in the file: advance the prefix.</summary>
    public void Written(Chunk chunk)
    {
        lock (_lock)
        {
            chunk.Done = true;
            while (_order.TryPeek(out var first) && first.Done)
            {
                _order.Dequeue();
                _prefix = first.End;
            }
            SignalLocked();
        }
    }

    /// <summary>A subflow failed: the chunks it had asked for go back to the queue (unless another copy is coming).</summary>
    public void GiveBack(int subflow, IEnumerable<Chunk> chunks)
    {
        var bit = 1 << subflow;
        lock (_lock)
        {
            _enabled[subflow] = false;
            foreach (var chunk in chunks)
            {
                chunk.Owners &= ~bit;
                if (!chunk.Claimed && chunk.Owners == 0)
                {
                    var at = _returned.FindIndex(c => c.Offset > chunk.Offset);
                    _returned.Insert(at < 0 ? _returned.Count : at, chunk);
                }
            }
            SignalLocked();
        }
    }

    /// <summary>Ends the transfer with <paramref name="failure"/> (the first failure wins).</summary>
    public void Fail(Exception failure)
    {
        lock (_lock)
        {
            _failure ??= failure;
            SignalLocked();
        }
    }

    private void SignalLocked()
    {
        var changed = _changed;
        _changed = NewSignal();
        changed.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
