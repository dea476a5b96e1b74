using System.Collections.Concurrent;

namespace FileProxy.Protocol.Client.Multipath;

/// <summary>
/// Idle subflows of finished transfers, kept per address for the next transfer over the same addresses (the proxy's
/// fills: one pool per origin address list). A subflow goes back only when its stream is at a request boundary
/// (nothing outstanding, no STATS in flight); one the server closed while it waited is noticed when taken and closed.
/// </summary>
public sealed class SubflowPool : IAsyncDisposable
{
    private readonly ConcurrentBag<Subflow>[] _idle;
    private readonly string[] _addresses;
    private readonly int _maxIdle;
    private int _connected;
    private int _disposed;

    /// <param name="addresses">The addresses, in the order every transfer using this pool gives them.</param>
    /// <param name="maxIdle">Idle subflows kept per address at most (about the number of concurrent transfers).</param>
    public SubflowPool(IReadOnlyList<(string Host, int Port)> addresses, int maxIdle = 16)
    {
        _addresses = [.. addresses.Select(a => Subflow.Name(a.Host, a.Port))];
        _idle = [.. addresses.Select(_ => new ConcurrentBag<Subflow>())];
        _maxIdle = maxIdle;
    }

    /// <summary>Subflows connected by a transfer and not taken from the pool (for tests and logs).</summary>
    public int Connected => Volatile.Read(ref _connected);

    /// <summary>An idle subflow to address <paramref name="index"/> whose connection is still open, or null.</summary>
    internal async ValueTask<Subflow?> TakeAsync(int index, string address)
    {
        if (index >= _idle.Length || _addresses[index] != address)
        {
            return null;
        }
        while (_idle[index].TryTake(out var subflow))
        {
            if (subflow.IsOpenAndIdle())
            {
                subflow.Reset();
                return subflow;
            }
            await subflow.DisposeAsync();
        }
        return null;
    }

    internal void NoteConnected() => Interlocked.Increment(ref _connected);

    /// <summary>Keeps <paramref name="subflow"/> for the next transfer, or closes it (broken, mid-request, pool full).</summary>
    internal async ValueTask ReturnAsync(Subflow subflow)
    {
        var index = subflow.Index;
        if (Volatile.Read(ref _disposed) == 0 && subflow.IsReusable && index < _idle.Length
            && _addresses[index] == subflow.Address && _idle[index].Count < _maxIdle)
        {
            subflow.PingInterval = TimeSpan.Zero;
            _idle[index].Add(subflow);
            if (Volatile.Read(ref _disposed) != 0 && _idle[index].TryTake(out var late))
            {
                await late.DisposeAsync(); // disposed meanwhile: nobody will take it
            }
            return;
        }
        await subflow.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        foreach (var bag in _idle)
        {
            while (bag.TryTake(out var subflow))
            {
                await subflow.DisposeAsync();
            }
        }
    }
}
