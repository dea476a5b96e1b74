using System.Collections.Concurrent;
using FileProxy.Protocol;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Decorates the origin's <see cref="IFileSource"/> (pass <see cref="Wrap"/> as the cluster's wrapOrigin) so a test
/// can make the origin slow or broken without timing: a body stops after a given number of bytes until the test
/// releases it, then goes on or fails; a STAT waits until released. A hold applies to the next request of its
/// kind for its name only. Also counts GETs and STATs per name. Disposing releases every hold, so no server is
/// left waiting on a gate when a test ends.
/// </summary>
public sealed class OriginControl : IDisposable
{
    private readonly ConcurrentDictionary<string, OriginHold> _faults = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, OriginHold> _statHolds = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _gets = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Name, GetRequest Request, StatusCode Status)> _requests = new();
    private readonly ConcurrentDictionary<string, int> _stats = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _wrongDigests = new(StringComparer.Ordinal);
    private readonly ConcurrentBag<OriginHold> _created = [];

    public IFileSource Wrap(IFileSource inner) => new Source(inner, this);

    /// <summary>The next GET of <paramref name="name"/> sends <paramref name="afterBytes"/> body bytes, then waits
    /// until the fault is released and sends the rest.</summary>
    public OriginHold Hold(string name, long afterBytes) => Add(name, new OriginHold(afterBytes, fails: false));

    /// <summary>The next GET of <paramref name="name"/> sends <paramref name="afterBytes"/> body bytes, then waits
    /// until the fault is released and fails (the origin closes the connection mid-body).</summary>
    public OriginHold FailAfter(string name, long afterBytes) => Add(name, new OriginHold(afterBytes, fails: true));

    /// <summary>The next STAT of <paramref name="name"/> is answered only once the hold is released.</summary>
    public OriginHold HoldStat(string name)
    {
        var hold = new OriginHold(0, fails: false);
        _created.Add(hold);
        _statHolds[name] = hold;
        return hold;
    }

    /// <summary>The next GET of <paramref name="name"/> announces a digest that does not match its bytes.</summary>
    public void AnnounceWrongDigest(string name) => _wrongDigests[name] = true;

    /// <summary>GET requests the origin received for <paramref name="name"/>.</summary>
    public int Gets(string name) => _gets.GetValueOrDefault(name);

    /// <summary>The GET requests the origin received for <paramref name="name"/>, in order, each with the status of
    /// its answer.</summary>
    public IReadOnlyList<(GetRequest Request, StatusCode Status)> Requests(string name) =>
        [.. _requests.Where(entry => entry.Name == name).Select(entry => (entry.Request, entry.Status))];

    /// <summary>STAT requests the origin received for <paramref name="name"/>.</summary>
    public int Stats(string name) => _stats.GetValueOrDefault(name);

    public void Dispose()
    {
        foreach (var fault in _created)
        {
            fault.Release();
        }
    }

    private OriginHold Add(string name, OriginHold fault)
    {
        _created.Add(fault);
        _faults[name] = fault;
        return fault;
    }

    private sealed class Source(IFileSource inner, OriginControl control) : IFileSource
    {
        public string Role => inner.Role;

        public IEnumerable<KeyValuePair<string, long>> Counters => inner.Counters;

        public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
        {
            control._gets.AddOrUpdate(name.Value, 1, (_, count) => count + 1);
            var (head, body) = await inner.GetAsync(name, request, cancellationToken);
            control._requests.Enqueue((name.Value, request, head.Status));
            if (head.IsOk && control._wrongDigests.TryRemove(name.Value, out _))
            {
                head = head with { File = head.File! with { Digest = ContentDigest.Of([1, 2, 3]) } };
            }
            if (body is not null && control._faults.TryRemove(name.Value, out var fault))
            {
                body = new FaultyBody(body, fault);
            }
            return new SourceResult(head, body);
        }

        public async ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken)
        {
            control._stats.AddOrUpdate(name.Value, 1, (_, count) => count + 1);
            if (control._statHolds.TryRemove(name.Value, out var hold))
            {
                await hold.StopAsync(cancellationToken);
            }
            return await inner.StatAsync(name, cancellationToken);
        }

        public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) =>
            inner.PurgeAsync(name, cancellationToken);
    }

    /// <summary>A body that never leaves with its head, so every byte goes through <see cref="CuttingSink"/>.</summary>
    private sealed class FaultyBody(IResponseBody inner, OriginHold fault) : IResponseBody
    {
        public long Length => inner.Length;

        public bool TryCopyTo(Span<byte> destination) => false;

        public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) =>
            inner.SendAsync(new CuttingSink(sink, fault), cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    /// <summary>Passes bytes on, stopping at the fault's cut for as long as the fault says.</summary>
    private sealed class CuttingSink(IBodySink sink, OriginHold fault) : IBodySink
    {
        private long _sent;
        private bool _passed;

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            var before = (int)BeforeCut(data.Length);
            await sink.WriteAsync(data[..before], cancellationToken);
            _sent += before;
            if (before < data.Length)
            {
                await PassCutAsync(cancellationToken);
                await sink.WriteAsync(data[before..], cancellationToken);
                _sent += data.Length - before;
            }
        }

        public async ValueTask SendFileAsync(FileStream file, long offset, long count, CancellationToken cancellationToken)
        {
            var before = BeforeCut(count);
            if (before > 0)
            {
                await sink.SendFileAsync(file, offset, before, cancellationToken);
                _sent += before;
            }
            if (before < count)
            {
                await PassCutAsync(cancellationToken);
                await sink.SendFileAsync(file, offset + before, count - before, cancellationToken);
                _sent += count - before;
            }
        }

        private long BeforeCut(long count) => _passed ? count : Math.Min(count, fault.AfterBytes - _sent);

        private async ValueTask PassCutAsync(CancellationToken cancellationToken)
        {
            await fault.StopAsync(cancellationToken);
            _passed = true;
        }
    }
}

/// <summary>One scripted stop of the origin in the middle of a request; see <see cref="OriginControl"/>.</summary>
public sealed class OriginHold
{
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal OriginHold(long afterBytes, bool fails)
    {
        AfterBytes = afterBytes;
        Fails = fails;
    }

    public long AfterBytes { get; }

    public bool Fails { get; }

    /// <summary>Completes when the origin has reached the hold (for a body: handed <see cref="AfterBytes"/> bytes to
    /// its socket) and waits.</summary>
    public Task Reached => _reached.Task;

    /// <summary>Lets the request go on (or fail, for a failing hold).</summary>
    public void Release() => _released.TrySetResult();

    internal async ValueTask StopAsync(CancellationToken cancellationToken)
    {
        _reached.TrySetResult();
        await _released.Task.WaitAsync(cancellationToken);
        if (Fails)
        {
            throw new IOException($"injected failure after {AfterBytes} body bytes");
        }
    }
}
