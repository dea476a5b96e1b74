using System.Net.Security;
using System.Net.Sockets;

namespace FileProxy.Protocol.Transport;

/// <summary>
/// One connected byte stream, either side: a socket, or TLS over it. Plain links keep the socket's fast paths
/// (sendfile, zero-copy reads into the caller's memory); TLS links read and write through their
/// <see cref="SslStream"/>.
/// </summary>
public sealed class Link : IDisposable
{
    public Link(Socket socket, SslStream? tls = null)
    {
        Socket = socket;
        Tls = tls;
    }

    public Socket Socket { get; }

    /// <summary>The TLS session over <see cref="Socket"/>, or null for a plain connection.</summary>
    public SslStream? Tls { get; }

    public ValueTask<int> ReceiveAsync(Memory<byte> destination, CancellationToken cancellationToken) =>
        Tls is null ? Socket.ReceiveAsync(destination, SocketFlags.None, cancellationToken) : Tls.ReadAsync(destination, cancellationToken);

    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (Tls is not null)
        {
            await Tls.WriteAsync(data, cancellationToken);
            return;
        }
        while (!data.IsEmpty)
        {
            data = data[await Socket.SendAsync(data, SocketFlags.None, cancellationToken)..];
        }
    }

    /// <summary>Whether bytes can be read now without waiting. Only known for plain sockets: a TLS record may hold
    /// bytes the kernel no longer counts.</summary>
    public bool HasPendingBytes => Tls is null && Socket.Available > 0;

    /// <summary>Waits until bytes can be read, holding no buffer (a zero-byte read; SslStream supports it too).</summary>
    public async ValueTask WaitReadableAsync(CancellationToken cancellationToken) => _ = await ReceiveAsync(Memory<byte>.Empty, cancellationToken);

    public void Dispose()
    {
        Tls?.Dispose();
        Socket.Dispose();
    }
}
