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

    public ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (Tls is not null)
        {
            return Tls.WriteAsync(data, cancellationToken);
        }
        // A request fits the socket's buffer: the send completes at once, with no state machine of ours.
        var sending = Socket.SendAsync(data, SocketFlags.None, cancellationToken);
        if (sending.IsCompletedSuccessfully)
        {
            var sent = sending.Result;
            return sent == data.Length ? ValueTask.CompletedTask : SendRestAsync(data[sent..], cancellationToken);
        }
        return SendRestAsync(sending, data, cancellationToken);
    }

    private async ValueTask SendRestAsync(ValueTask<int> sending, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        await SendRestAsync(data[await sending..], cancellationToken);

    private async ValueTask SendRestAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
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
