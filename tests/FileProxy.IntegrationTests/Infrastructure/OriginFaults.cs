using FileProxy.Protocol;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Fault injection for the origin, through <see cref="Cluster"/>'s wrapOrigin hook (<c>wrapOrigin: faults.Wrap</c>).
/// While armed, every GET body stops after a set number of bytes and throws, as if the origin died mid-transfer:
/// the <see cref="ProtocolServer"/> then closes the connection. The plan outlives origin restarts.
/// </summary>
public sealed class OriginFaults
{
    private long _cutAfter = -1;
    private int _bodiesCut;
    private int _cutsLeft = int.MaxValue;
    private Action? _onCut;

    /// <summary>Bodies cut so far.</summary>
    public int BodiesCut => Volatile.Read(ref _bodiesCut);

    /// <summary>From now on, bodies longer than <paramref name="bytes"/> stop after that many bytes; only the next
    /// <paramref name="times"/> of them if given, then bodies are sent whole. <paramref name="onCut"/> runs at each cut,
    /// after the bytes before it were handed to the socket and before the connection closes.</summary>
    public void CutBodiesAfter(long bytes, int times = int.MaxValue, Action? onCut = null)
    {
        Volatile.Write(ref _onCut, onCut);
        Interlocked.Exchange(ref _cutsLeft, times);
        Interlocked.Exchange(ref _cutAfter, bytes);
    }

    /// <summary>From now on, bodies are sent whole.</summary>
    public void LetThrough() => Interlocked.Exchange(ref _cutAfter, -1);

    public IFileSource Wrap(IFileSource source) => new CuttingSource(source, this);

    private sealed class CuttingSource(IFileSource inner, OriginFaults faults) : IFileSource
    {
        public string Role => inner.Role;

        public IEnumerable<KeyValuePair<string, long>> Counters => inner.Counters;

        public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
        {
            var result = await inner.GetAsync(name, request, cancellationToken);
            var cutAfter = Interlocked.Read(ref faults._cutAfter);
            if (cutAfter < 0 || result.Body is null || result.Body.Length <= cutAfter
                || Interlocked.Decrement(ref faults._cutsLeft) < 0)
            {
                return result;
            }
            return result with { Body = new CutBody(result.Body, cutAfter, faults) };
        }

        public ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken) =>
            inner.StatAsync(name, cancellationToken);

        public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) =>
            inner.PurgeAsync(name, cancellationToken);
    }

    private sealed class CutBody(IResponseBody inner, long cutAfter, OriginFaults faults) : IResponseBody
    {
        public long Length => inner.Length;

        // Never in one packet with the head: the cut has to happen in the middle of the body.
        public bool TryCopyTo(Span<byte> destination) => false;

        public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) =>
            inner.SendAsync(new CuttingSink(sink, cutAfter, faults), cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private sealed class CuttingSink : IBodySink
    {
        private readonly IBodySink _sink;
        private readonly long _cutAfter;
        private readonly OriginFaults _faults;
        private long _left;

        public CuttingSink(IBodySink sink, long cutAfter, OriginFaults faults)
        {
            _sink = sink;
            _cutAfter = cutAfter;
            _faults = faults;
            _left = cutAfter;
        }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            var now = (int)Math.Min(data.Length, _left);
            if (now > 0)
            {
                await _sink.WriteAsync(data[..now], cancellationToken);
                _left -= now;
            }
            if (now < data.Length)
            {
                Cut();
            }
        }

        public async ValueTask SendFileAsync(FileStream file, long offset, long count, CancellationToken cancellationToken)
        {
            var now = Math.Min(count, _left);
            if (now > 0)
            {
                await _sink.SendFileAsync(file, offset, now, cancellationToken);
                _left -= now;
            }
            if (now < count)
            {
                Cut();
            }
        }

        private void Cut()
        {
            Interlocked.Increment(ref _faults._bodiesCut);
            Volatile.Read(ref _faults._onCut)?.Invoke();
            throw new IOException($"injected fault: the origin dies after {_cutAfter} body bytes");
        }
    }
}
