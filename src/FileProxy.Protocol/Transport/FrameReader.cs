using System.Buffers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Transport;

/// <summary>
/// Reads frames from a socket through one pooled buffer, then lets the caller read a body straight into its own
/// memory. A frame returned by <see cref="ReadFrameAsync"/> is valid until the next call.
/// </summary>
internal sealed class FrameReader : IDisposable
{
    private readonly Link _link;
    private readonly int _maxPayload;
    private byte[]? _buffer;
    private int _start;
    private int _end;

    public FrameReader(Socket socket, int maxPayload)
        : this(new Link(socket), maxPayload)
    {
    }

    public FrameReader(Link link, int maxPayload)
    {
        _link = link;
        _maxPayload = maxPayload;
        _buffer = ArrayPool<byte>.Shared.Rent(ProtocolLimits.FrameHeaderLength + maxPayload);
    }

    /// <summary>Bytes received but not yet consumed.</summary>
    public int Buffered => _end - _start;

    /// <summary>Whether a connection between requests is still good to use: nothing is buffered, and nothing arrived
    /// unasked on <paramref name="socket"/> (a peer that closed it while idle makes it readable with nothing to
    /// read; its FIN or RST).</summary>
    public bool IsQuiet(Socket socket)
    {
        try
        {
            return Buffered == 0 && !socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Reads one frame. Returns null when the peer closed cleanly at a frame boundary.
    /// <paramref name="onFirstByte"/> runs once when the frame's first byte is buffered (the connection starts
    /// its header timeout there). Throws <see cref="ProtocolException"/> on a malformed header and
    /// <see cref="EndOfStreamException"/> when the peer closes mid-frame.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // once per request and response: no box each time
    public async ValueTask<Frame?> ReadFrameAsync(Action? onFirstByte, CancellationToken cancellationToken)
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(FrameReader));
        if (Buffered == 0)
        {
            _start = _end = 0;
            if (!await FillAsync(cancellationToken))
            {
                return null;
            }
        }
        onFirstByte?.Invoke();
        FrameHeader header;
        while (!FrameHeader.TryRead(buffer.AsSpan(_start, Buffered), out header))
        {
            await FillOrThrowAsync(cancellationToken);
        }
        if (header.PayloadLength > _maxPayload)
        {
            throw new ProtocolException($"frame payload of {header.PayloadLength} bytes exceeds this peer's limit of {_maxPayload}");
        }
        var total = ProtocolLimits.FrameHeaderLength + header.PayloadLength;
        while (Buffered < total)
        {
            await FillOrThrowAsync(cancellationToken);
        }
        var payload = new ReadOnlyMemory<byte>(buffer, _start + ProtocolLimits.FrameHeaderLength, header.PayloadLength);
        _start += total;
        return new Frame(header, payload);
    }

    /// <summary>Reads up to <paramref name="destination"/>.Length body bytes: first what is buffered, then from the
    /// socket. Returns 0 only when the peer closed.</summary>
    public ValueTask<int> ReadBodyAsync(Memory<byte> destination, CancellationToken cancellationToken) =>
        Buffered > 0 ? ValueTask.FromResult(ReadBuffered(destination.Span))
            : _link.ReceiveAsync(destination, cancellationToken); // no state machine of ours on the way

    /// <summary>Copies up to <paramref name="destination"/>.Length of the buffered bytes out; returns how many.</summary>
    public int ReadBuffered(Span<byte> destination)
    {
        var count = Math.Min(Buffered, destination.Length);
        _buffer.AsSpan(_start, count).CopyTo(destination);
        _start += count;
        return count;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FillAsync(CancellationToken cancellationToken)
    {
        var buffer = _buffer!;
        if (_start > 0 && _end == buffer.Length)
        {
            Buffer.BlockCopy(buffer, _start, buffer, 0, Buffered);
            _end -= _start;
            _start = 0;
        }
        var read = await _link.ReceiveAsync(buffer.AsMemory(_end), cancellationToken);
        _end += read;
        return read > 0;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FillOrThrowAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            // Keep the partial frame at the front so a full-size frame always fits.
            Buffer.BlockCopy(_buffer!, _start, _buffer!, 0, Buffered);
            _end -= _start;
            _start = 0;
        }
        if (!await FillAsync(cancellationToken))
        {
            throw new EndOfStreamException("peer closed the connection in the middle of a frame");
        }
    }
}

/// <summary>One frame: its header and payload (a view into the reader's buffer).</summary>
internal readonly record struct Frame(FrameHeader Header, ReadOnlyMemory<byte> Payload);
