using System.Net;
using System.Net.Sockets;
using Serilog;

namespace FileProxy.Protocol.Transport;

/// <summary>Socket creation and options shared by every listener and every connection.</summary>
public static class SocketSetup
{
    private const int IpProtoTcp = 6;
    private const int TcpUserTimeout = 18;
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;

    /// <summary>How long sent data may stay unacknowledged (also a peer that stopped reading) before the kernel
    /// drops the connection.</summary>
    public static readonly TimeSpan UnacknowledgedTimeout = TimeSpan.FromSeconds(60);

    private static int _userTimeoutRefusalLogged;

    /// <summary>Send and receive buffers large enough to keep loopback and fast links busy.</summary>
    public const int SocketBufferBytes = 4 * 1024 * 1024;

    public static Socket Listen(IPEndPoint endPoint, bool mptcp, int backlog = 1024)
    {
        var socket = Create(endPoint.AddressFamily, mptcp);
        try
        {
            // SO_REUSEADDR alone, to rebind over TIME_WAIT after a restart. .NET's ReuseAddress option also sets
            // SO_REUSEPORT on Linux, which would let a second server bind a busy port and steal half its clients.
            if (OperatingSystem.IsLinux())
            {
                socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            }
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6 && endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }
            socket.Bind(endPoint);
            socket.Listen(backlog);
            return socket;
        }
        catch (SocketException e)
        {
            // "Address already in use" alone does not say which address.
            socket.Dispose();
            throw new SocketException((int)e.SocketErrorCode, $"cannot listen on {endPoint}: {e.Message}");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static async Task<Socket> ConnectAsync(string host, int port, bool mptcp, CancellationToken cancellationToken)
    {
        var addresses = IPAddress.TryParse(host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken);
        Exception? last = null;
        foreach (var address in addresses)
        {
            var socket = Create(address.AddressFamily, mptcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken);
                Configure(socket, mptcp);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>Bytes of this connection the peer's TCP acknowledged (Linux TCP_INFO <c>tcpi_bytes_acked</c>), or
    /// null where the kernel or the socket cannot say (closed, not TCP). What really arrived, even when a send failed
    /// part way and could not say how far it got.</summary>
    public static long? BytesAcknowledged(Socket socket)
    {
        try
        {
            return OperatingSystem.IsLinux() && TcpInfo.Read(socket) is { } info ? (long)info.BytesAcked : null;
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>Options for a connected socket, either side; <paramref name="mptcp"/> says whether it may be an
    /// MPTCP socket.</summary>
    public static void Configure(Socket socket, bool mptcp = false)
    {
        socket.NoDelay = true;
        // An MPTCP connection keeps the kernel's buffer autotuning. Fixed 4 MiB buffers there let each subflow
        // queue far more than its path holds: in the two-path test network 100 MiB took 4.8-6.8 s with them and
        // 4.6-4.8 s without, with 2-10x fewer retransmitted segments and fewer bytes sent twice (reinjected).
        if (!mptcp || !Mptcp.IsMptcpSocket(socket))
        {
            socket.SendBufferSize = SocketBufferBytes;
            socket.ReceiveBufferSize = SocketBufferBytes;
        }
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        if (OperatingSystem.IsLinux() && !TrySetUserTimeout(socket)
            && Interlocked.Exchange(ref _userTimeoutRefusalLogged, 1) == 0)
        {
            LogUserTimeoutRefused(socket, Log.ForContext(typeof(SocketSetup)));
        }
    }

    /// <summary>TCP_USER_TIMEOUT = <see cref="UnacknowledgedTimeout"/>; false where the socket refuses it: MPTCP
    /// sockets do (Linux 6.18: ENOPROTOOPT, "Protocol not available"). Keep-alive and the programs' own idle and stall
    /// timeouts still notice a dead peer there, so that is no error: <see cref="Configure"/> says it once, at Debug.</summary>
    internal static bool TrySetUserTimeout(Socket socket)
    {
        try
        {
            socket.SetRawSocketOption(IpProtoTcp, TcpUserTimeout, BitConverter.GetBytes((int)UnacknowledgedTimeout.TotalMilliseconds));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    internal static void LogUserTimeoutRefused(Socket socket, ILogger log) =>
        log.Debug("TCP_USER_TIMEOUT is refused on {Kind} sockets here; keep-alive and the idle timeouts notice a dead peer instead",
            Mptcp.IsMptcpSocket(socket) ? "MPTCP" : "these");

    private static Socket Create(AddressFamily family, bool mptcp) => SocketFactory.Shared.Create(family, mptcp);
}
