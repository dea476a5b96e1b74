using System.Net.Sockets;

namespace FileProxy.Bench;

/// <summary>What <see cref="HttpLoadConnection"/> and <see cref="FileProxyLoadConnection"/> share: a TCP connection
/// without Nagle's delay, and a receive that treats the peer's close as an error.</summary>
internal static class LoadSocket
{
    public static async Task<Socket> ConnectAsync(string host, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Receives at least one byte into <paramref name="buffer"/>; the server closing is an error.</summary>
    public static async ValueTask<int> ReceiveSomeAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = await socket.ReceiveAsync(buffer, cancellationToken);
        return read > 0 ? read : throw new EndOfStreamException("the server closed the connection");
    }
}
