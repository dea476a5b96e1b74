using System.Buffers;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;

namespace FileProxy.Proxy.Cache;

/// <summary>
/// A range of a file still being filled: sends what is written and waits for the rest. The range's last byte is
/// held back until the fill has verified the whole file's digest, so a reader of a corrupt or failed fill always
/// sees its response cut short (an error), never a complete-looking body of bad bytes. A range asked with an
/// if-version (a resume or a multipath chunk, whose client checks the whole file) waits only for the file's last byte.
/// </summary>
internal sealed class GrowingFileBody : IResponseBody
{
    private readonly Fill _fill;
    private readonly FileStream _file;
    private readonly long _offset;
    private readonly long _holdFrom;
    private readonly ContinueFromUpstream _continue;
    private int _disposed;

    // holdFrom: bytes from here on are sent only once the fill is verified: the range's last byte normally; the
    // file's last byte for a request that pins a version (its asker checks the whole file's digest).
    public GrowingFileBody(Fill fill, long offset, long length, long holdFrom, ContinueFromUpstream continueFromUpstream)
    {
        _fill = fill;
        _file = fill.File; // the fill's, lent for as long as this body holds its pin
        _offset = offset;
        _holdFrom = holdFrom;
        Length = length;
        _continue = continueFromUpstream;
    }

    public long Length { get; }

    public bool TryCopyTo(Span<byte> destination) =>
        _fill.State == FillState.Complete && new FileRegionBody(_file, _offset, Length).TryCopyTo(destination);

    public async ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken)
    {
        var position = _offset;
        var end = _offset + Length;
        while (position < end)
        {
            var state = _fill.State;
            var written = _fill.Written;
            if (state == FillState.Failed)
            {
                // The fill logged its failure once; this reader's response is cut, which is how its client hears it.
                return CopyOutcome.UpstreamFailed(
                    new BodySourceFailedException($"upstream fetch failed after {written} bytes: {_fill.FailureReason}"));
            }
            if (state == FillState.Abandoned && position >= written)
            {
                // The cache gave up on keeping the file, not on the file: the rest comes straight from the upstream.
                return await _continue(position, end - position, sink, cancellationToken);
            }
            var sendable = state == FillState.Complete ? end
                : state == FillState.Abandoned ? Math.Min(written, end)
                : Math.Min(written, Math.Min(end, _holdFrom));
            if (sendable > position)
            {
                var sent = await BodyCopy.SendFileAsync(sink, _file, position, sendable - position, cancellationToken);
                if (!sent.IsSuccess)
                {
                    return sent;
                }
                position = sendable;
                continue;
            }
            try
            {
                await _fill.WaitForChangeAsync(written, state, cancellationToken);
            }
            catch (OperationCanceledException e)
            {
                return new CopyOutcome(CopyResult.Canceled, e);
            }
        }
        return CopyOutcome.Success;
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _fill.Unpin();
        }
        return ValueTask.CompletedTask;
    }
}

/// <summary>Sends bytes [offset, offset + length) of a fill's file, fetched from the upstream for the same version.</summary>
internal delegate ValueTask<CopyOutcome> ContinueFromUpstream(long offset, long length, IBodySink sink, CancellationToken cancellationToken);

/// <summary>A committed entry's file region; lets the cache know when the entry is no longer being read.</summary>
internal sealed class CachedFileBody : IResponseBody
{
    private readonly FileRegionBody _region;
    private readonly Action _release;
    private int _disposed;

    public CachedFileBody(FileStream file, long offset, long length, Action release)
    {
        _region = new FileRegionBody(file, offset, length);
        _release = release;
    }

    public long Length => _region.Length;

    public bool TryCopyTo(Span<byte> destination) => _region.TryCopyTo(destination);

    public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) => _region.SendAsync(sink, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await _region.DisposeAsync();
            _release();
        }
    }
}

/// <summary>An upstream body relayed as it arrives, for files too large to cache; gives back its connection and
/// its upstream slot when done.</summary>
internal sealed class UpstreamStreamBody : IResponseBody
{
    private readonly FileClientPool _pool;
    private readonly FileClient _client;
    private readonly GetResponse _response;
    private readonly UpstreamSlot? _slot;
    private int _disposed;

    public UpstreamStreamBody(FileClientPool pool, FileClient client, GetResponse response, UpstreamSlot? slot)
    {
        _pool = pool;
        _client = client;
        _response = response;
        _slot = slot;
    }

    public long Length => _response.Head.Length;

    public bool TryCopyTo(Span<byte> destination) => false;

    public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) =>
        BodyCopy.CopyAsync(_response.ReadAsync, sink, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await _response.DisposeAsync();
            await _pool.ReturnAsync(_client);
            _slot?.Release();
        }
    }
}

/// <summary>A small body already read into a pooled buffer.</summary>
internal sealed class MemoryBody : IResponseBody, IDisposable
{
    private byte[]? _buffer;

    public MemoryBody(int length)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        Length = length;
    }

    public long Length { get; }

    public Memory<byte> Memory => _buffer.AsMemory(0, (int)Length);

    public bool TryCopyTo(Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            return false;
        }
        Memory.Span.CopyTo(destination);
        return true;
    }

    public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) =>
        BodyCopy.WriteAsync(sink, Memory, cancellationToken);

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// A small cache entry's whole file, held in memory (<see cref="CacheEntry.InMemory"/>), and the body of a response
/// for all of it or a range of it. Immutable: one instance serves every whole-file hit at once (the server disposes
/// each response's body; this one has nothing to give back), so such a hit neither allocates nor reads the file.
/// </summary>
internal sealed class SmallBody(ReadOnlyMemory<byte> bytes) : IResponseBody
{
    public ReadOnlyMemory<byte> Bytes { get; } = bytes;

    public long Length => Bytes.Length;

    /// <summary>A body of <paramref name="length"/> bytes from <paramref name="offset"/>: this one when it is all of it.</summary>
    public SmallBody Slice(long offset, long length) =>
        offset == 0 && length == Bytes.Length ? this : new SmallBody(Bytes.Slice((int)offset, (int)length));

    public bool TryCopyTo(Span<byte> destination) => Bytes.Span.TryCopyTo(destination);

    public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) =>
        BodyCopy.WriteAsync(sink, Bytes, cancellationToken);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
