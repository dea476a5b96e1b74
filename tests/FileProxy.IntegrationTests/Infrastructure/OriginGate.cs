using FileProxy.Protocol;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Holds every whole-file body after its first <c>holdAfter</c> bytes until <see cref="Open"/> (ranged GETs pass
/// freely), so a test can act while fills are stalled mid-body: an upstream that sends a little and stalls. Counts
/// the GETs it sees and the bodies it is holding.
/// </summary>
public sealed class OriginGate(long holdAfter)
{
    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _gets;
    private int _held;

    public int Gets => Volatile.Read(ref _gets);

    /// <summary>Bodies that reached the gate and wait at it now.</summary>
    public int Held => Volatile.Read(ref _held);

    public void Open() => _open.TrySetResult();

    public IFileSource Wrap(IFileSource source) => new GatedSource(source, this);

    private sealed class GatedSource(IFileSource inner, OriginGate gate) : IFileSource
    {
        public string Role => inner.Role;

        public IEnumerable<KeyValuePair<string, long>> Counters => inner.Counters;

        public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref gate._gets);
            var result = await inner.GetAsync(name, request, cancellationToken);
            if (result.Body is null || request.Offset != 0 || result.Body.Length <= gate.HoldAfter)
            {
                return result;
            }
            return result with { Body = new GatedBody(result.Body, gate) };
        }

        public ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken) => inner.StatAsync(name, cancellationToken);

        public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) => inner.PurgeAsync(name, cancellationToken);

    }

    private long HoldAfter => holdAfter;

    private sealed class GatedBody(IResponseBody inner, OriginGate gate) : IResponseBody
    {
        public long Length => inner.Length;

        public bool TryCopyTo(Span<byte> destination) => false;

        public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) =>
            inner.SendAsync(new GatedSink(sink, gate), cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private sealed class GatedSink(IBodySink sink, OriginGate gate) : IBodySink
    {
        private long _left = gate.HoldAfter;

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            var now = (int)Math.Min(data.Length, _left);
            if (now > 0)
            {
                await sink.WriteAsync(data[..now], cancellationToken);
                _left -= now;
            }
            if (now < data.Length)
            {
                await WaitAsync(cancellationToken);
                await sink.WriteAsync(data[now..], cancellationToken);
            }
        }

        public async ValueTask SendFileAsync(FileStream file, long offset, long count, CancellationToken cancellationToken)
        {
            var now = Math.Min(count, _left);
            if (now > 0)
            {
                await sink.SendFileAsync(file, offset, now, cancellationToken);
                _left -= now;
            }
            if (now < count)
            {
                await WaitAsync(cancellationToken);
                await sink.SendFileAsync(file, offset + now, count - now, cancellationToken);
            }
        }

        private async Task WaitAsync(CancellationToken cancellationToken)
        {
            if (gate._open.Task.IsCompleted)
            {
                return;
            }
            Interlocked.Increment(ref gate._held);
            try
            {
                await gate._open.Task.WaitAsync(cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref gate._held);
            }
        }
    }
}
