using System.Net;
using System.Net.Sockets;
using Serilog;

namespace FileProxy.Protocol.Transport;

/// <summary>Socket creation and options shared by every listener and every connection.</summary>
public static class SocketSetup
{
    private const int IpProtoTcp = 6;
    private const int TcpUserTimeout = 18;
    private const int TcpNotSentLowat = 25;
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;

    /// <summary>How long sent data may stay unacknowledged (also a peer that stopped reading) before the kernel
    /// drops the connection.</summary>
    public static readonly TimeSpan UnacknowledgedTimeout = TimeSpan.FromSeconds(60);

    private static int _userTimeoutRefusalLogged;

    /// <summary>A send buffer large enough to keep loopback and fast links busy.</summary>
    public const int SocketBufferBytes = 4 * 1024 * 1024;

    /// <summary>The send buffer of a connection a server accepted (the kernel doubles it for its bookkeeping).</summary>
    public const int ServedSendBufferBytes = 1024 * 1024;

    /// <summary>Unsent bytes a served connection queues before a send waits (TCP_NOTSENT_LOWAT).</summary>
    public const int ServedNotSentBytes = 512 * 1024;

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
        // The receive buffer is left to the kernel's autotuning (SO_RCVBUF would turn it off for this socket), which
        // sizes it to what the reader drains per round trip, up to net.ipv4.tcp_rmem's maximum. With a fixed 4 MiB
        // (8 MiB to the kernel) a process that reads many connections on a few threads stays on one while its socket
        // holds data, as a read that finds bytes completes at once: bench workload b's 50 warm clients, in one
        // process, read their first bytes a median 232-276 ms after connecting, and 70-120 ms with autotuning, all
        // 50 done in 1.20-1.50 s and 1.23-1.46 s (5 rounds each, alternating; nginx 167-240 ms, 2.16-2.44 s).
        // An MPTCP connection keeps the send buffer's autotuning too. Fixed 4 MiB buffers there let each subflow
        // queue far more than its path holds: in the two-path test network 100 MiB took 4.8-6.8 s with them and
        // 4.6-4.8 s without, with 2-10x fewer retransmitted segments and fewer bytes sent twice (reinjected).
        if (!mptcp || !Mptcp.IsMptcpSocket(socket))
        {
            socket.SendBufferSize = SocketBufferBytes;
        }
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        if (OperatingSystem.IsLinux() && !TrySetUserTimeout(socket)
            && Interlocked.Exchange(ref _userTimeoutRefusalLogged, 1) == 0)
        {
            LogUserTimeoutRefused(socket, Log.ForContext(typeof(SocketSetup)));
        }
    }

    /// <summary>
    /// <see cref="Configure"/> for a connection a server accepted, whose bodies it sends: at most 512 KiB unsent
    /// (TCP_NOTSENT_LOWAT), and on a short path a 1 MiB send buffer. A client that reads its connections in turn (as
    /// .NET does with inline socket completions: a read that finds bytes waiting completes at once, so one connection
    /// keeps the thread while its socket has data) stays on whichever connection the server keeps topped up. With 4
    /// MiB buffers (8 MiB to the kernel) bench workload b's client read one 100 MiB hit for up to 145 ms at a stretch
    /// (perf trace) while the other 49 waited for their heads: median first byte 97-111 ms, nginx 60. Unsent bytes
    /// bounded alone: first byte 53 ms, all 50 done in 1.15 s; with the 1 MiB buffer too: 60 ms and 0.83 s
    /// (docs/BENCHMARKS.md). A 1 MiB buffer is a window of about 2 MiB per round trip, so it is set only where the
    /// handshake's round trip is under <see cref="ShortPathRtt"/> (2 GB/s and more); a longer path keeps the 4 MiB
    /// buffers (80 MB/s at 100 ms), as MPTCP connections keep the kernel's autotuning. Both were taken out once
    /// (d227f86) because the shared-bottleneck fairness test then failed 2 runs in 3; that was the old test network,
    /// whose shaping on the sending host's own veth let TCP small queues starve a second flow whatever the buffers.
    /// On the rebuilt one (scripts/testbed.sh, shaping in a middle namespace) the testbed tests pass with them.
    /// </summary>
    public static void ConfigureServed(Socket socket, bool mptcp = false)
    {
        Configure(socket, mptcp);
        if (mptcp && Mptcp.IsMptcpSocket(socket))
        {
            return;
        }
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        if (ServedSendBuffer(TcpInfo.Read(socket)?.Rtt) is { } bytes)
        {
            socket.SendBufferSize = bytes;
        }
        try
        {
            socket.SetRawSocketOption(IpProtoTcp, TcpNotSentLowat, BitConverter.GetBytes(ServedNotSentBytes));
        }
        catch (SocketException)
        {
            // An older kernel without it: the send buffer alone bounds what one connection queues.
        }
    }

    /// <summary>Round trips shorter than this (the handshake's, TCP_INFO tcpi_rtt) count as a short path: loopback,
    /// a LAN.</summary>
    public static readonly TimeSpan ShortPathRtt = TimeSpan.FromMilliseconds(1);

    /// <summary>The send buffer for a served connection whose handshake took <paramref name="rttMicroseconds"/>:
    /// <see cref="ServedSendBufferBytes"/> on a short path, null (keep <see cref="SocketBufferBytes"/>) on a longer
    /// one or when the kernel has no sample yet (0).</summary>
    public static int? ServedSendBuffer(uint? rttMicroseconds) =>
        rttMicroseconds is > 0 and { } rtt && rtt < ShortPathRtt.TotalMicroseconds ? ServedSendBufferBytes : null;

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
