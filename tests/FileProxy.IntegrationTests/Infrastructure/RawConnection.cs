using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>A bare TCP connection to a server, for sending what no well-behaved client sends and reading the
/// answer frame by frame.</summary>
public sealed class RawConnection : IAsyncDisposable
{
    private readonly NetworkStream _stream;

    private RawConnection(Socket socket) => _stream = new NetworkStream(socket, ownsSocket: true);

    private RawConnection(NetworkStream stream) => _stream = stream;

    public static async Task<RawConnection> ConnectAsync(int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new RawConnection(socket);
    }

    /// <summary>Wraps a socket the caller connected (from a chosen local address, say); the caller disposes the
    /// socket.</summary>
    public static RawConnection Over(Socket socket) => new(new NetworkStream(socket, ownsSocket: false));

    public ValueTask SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken) =>
        _stream.WriteAsync(bytes, cancellationToken);

    /// <summary>Reads one whole response frame (no body) and decodes it as the answer to
    /// <paramref name="requestOpcode"/>.</summary>
    public async Task<(FrameHeader Header, ResponseHead Head)> ReadResponseAsync(Opcode requestOpcode, CancellationToken cancellationToken)
    {
        var headerBytes = new byte[ProtocolLimits.FrameHeaderLength];
        await _stream.ReadExactlyAsync(headerBytes, cancellationToken);
        if (!FrameHeader.TryRead(headerBytes, out var header))
        {
            throw new InvalidOperationException("a full header did not parse");
        }
        var payload = new byte[header.PayloadLength];
        await _stream.ReadExactlyAsync(payload, cancellationToken);
        return (header, WireCodec.DecodeResponse(requestOpcode, header, payload));
    }

    /// <summary>Says no more bytes will come from this side (a half close), as a peer does after its last request.</summary>
    public void ShutdownSend() => _stream.Socket.Shutdown(SocketShutdown.Send);

    /// <summary>Reads exactly <paramref name="count"/> raw bytes (a GET response's body).</summary>
    public async Task<byte[]> ReadBytesAsync(int count, CancellationToken cancellationToken)
    {
        var bytes = new byte[count];
        await _stream.ReadExactlyAsync(bytes, cancellationToken);
        return bytes;
    }

    /// <summary>Waits until the peer closes the connection. True when it closed (cleanly or with a reset); false
    /// when it sent another byte instead.</summary>
    public async Task<bool> WaitForCloseAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[1];
        try
        {
            return await _stream.ReadAsync(buffer, cancellationToken) == 0;
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            return true;
        }
    }

    /// <summary>A whole, well-formed request frame.</summary>
    public static byte[] Frame(Request request)
    {
        var buffer = new byte[WireCodec.MaxRequestFrame];
        var length = WireCodec.EncodeRequest(request, buffer);
        return buffer[..length];
    }

    /// <summary>A frame header with any payload length and version, to say what a well-behaved peer never says.</summary>
    public static byte[] Header(Opcode opcode, uint payloadLength, byte version = ProtocolLimits.Version)
    {
        var header = new byte[ProtocolLimits.FrameHeaderLength];
        BinaryPrimitives.WriteUInt16BigEndian(header, ProtocolLimits.Magic);
        header[2] = version;
        header[3] = (byte)opcode;
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), payloadLength);
        return header;
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
