using System.Net;
using System.Net.Sockets;

namespace FileProxy.Protocol.Tests.Transport;

/// <summary>Two connected loopback TCP sockets: the test writes to <see cref="Peer"/> and reads from <see cref="Local"/>.</summary>
internal sealed class SocketPair : IDisposable
{
    private SocketPair(Socket peer, Socket local)
    {
        Peer = peer;
        Local = local;
    }

    /// <summary>The remote end the test writes frames into.</summary>
    public Socket Peer { get; }

    /// <summary>The end under test, read by a <c>FrameReader</c>.</summary>
    public Socket Local { get; }

    public static async Task<SocketPair> ConnectAsync(CancellationToken cancellationToken)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            var accept = listener.AcceptAsync(cancellationToken);
            await peer.ConnectAsync(listener.LocalEndPoint!, cancellationToken);
            var local = await accept;
            return new SocketPair(peer, local);
        }
        catch
        {
            peer.Dispose();
            throw;
        }
    }

    public async Task SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var sent = await Peer.SendAsync(data, SocketFlags.None, cancellationToken);
            data = data[sent..];
        }
    }

    /// <summary>Closes the peer's sending side: the local end reads a clean end of stream.</summary>
    public void ClosePeer() => Peer.Shutdown(SocketShutdown.Send);

    /// <summary>Spins until <paramref name="count"/> bytes wait in the local receive queue, so the reader's next
    /// receive sees them all at once. Loopback delivers within microseconds; the deadline bounds the wait.</summary>
    public async Task WaitUntilBufferedAsync(int count, CancellationToken cancellationToken)
    {
        while (Local.Available < count)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.Yield();
        }
    }

    public void Dispose()
    {
        Peer.Dispose();
        Local.Dispose();
    }
}
