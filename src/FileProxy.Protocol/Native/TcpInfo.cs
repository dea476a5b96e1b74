using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FileProxy.Protocol.Native;

/// <summary>
/// The leading part of Linux's <c>struct tcp_info</c> (include/uapi/linux/tcp.h) up to <c>tcpi_rcv_ooopack</c>, read
/// with <c>getsockopt(IPPROTO_TCP, TCP_INFO)</c>. Only the fields the multipath controller reads are named; the rest
/// keep the layout. An older kernel fills a shorter prefix: <see cref="TryRead"/> reports how many bytes it gave.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
internal struct TcpInfo
{
    /// <summary>Bytes read: <c>struct tcp_info</c> up to and including <c>tcpi_rcv_ooopack</c> (offset 224).</summary>
    public const int Size = 228;

    private const int IpProtoTcp = 6;
    private const int TcpInfoOption = 11;

    /// <summary>tcpi_ca_state, offset 1 (the sending side's congestion state; on a receiver it says little).</summary>
    [FieldOffset(1)] public byte CongestionState;

    /// <summary>tcpi_rtt (µs), offset 68: smoothed RTT of the segments this side sent (on a receiver: its requests,
    /// whose ACKs queue behind the data coming the other way).</summary>
    [FieldOffset(68)] public uint Rtt;

    /// <summary>tcpi_snd_cwnd, offset 80 (this side's sending window; on a receiver it says little).</summary>
    [FieldOffset(80)] public uint SendCongestionWindow;

    /// <summary>tcpi_rcv_rtt (µs), offset 92: the receiver's own RTT estimate, measured on the data it receives
    /// (from TCP timestamps), so it includes the queueing delay in the data's direction.</summary>
    [FieldOffset(92)] public uint ReceiverRtt;

    /// <summary>tcpi_total_retrans, offset 100 (this side's retransmissions).</summary>
    [FieldOffset(100)] public uint TotalRetransmissions;

    /// <summary>tcpi_bytes_received, offset 128.</summary>
    [FieldOffset(128)] public ulong BytesReceived;

    /// <summary>tcpi_min_rtt (µs), offset 148: the smallest RTT this side measured (before queues filled).</summary>
    [FieldOffset(148)] public uint MinRtt;

    /// <summary>tcpi_rcv_ooopack, offset 224: data packets that arrived out of order, i.e. after a hole. On a
    /// receiver this is the sign that the path dropped (or reordered) a packet: congestion seen from the receiving
    /// end. Zero on kernels older than 5.4, which fill less of the struct.</summary>
    [FieldOffset(224)] public uint ReceiverOutOfOrderPackets;

    /// <summary>Reads TCP_INFO of a connected TCP socket. False where the platform or socket type has none.</summary>
    public static bool TryRead(Socket socket, out TcpInfo info, out int filled)
    {
        info = default;
        filled = 0;
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        Span<byte> buffer = stackalloc byte[Size];
        try
        {
            filled = socket.GetRawSocketOption(IpProtoTcp, TcpInfoOption, buffer);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
        info = MemoryMarshal.Read<TcpInfo>(buffer);
        return filled >= 104;
    }
}
