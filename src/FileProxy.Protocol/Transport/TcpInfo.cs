using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FileProxy.Protocol.Transport;

/// <summary>
/// The start of Linux's <c>struct tcp_info</c> (include/uapi/linux/tcp.h), as getsockopt(IPPROTO_TCP, TCP_INFO)
/// and MPTCP_TCPINFO return it; fields through tcpi_rcv_ooopack (kernel 5.4+). An older kernel fills fewer
/// bytes; <see cref="Length"/> says how many. Times are in microseconds. On the receiving side the congestion
/// figures (cwnd, retransmissions, delivery rate) describe the reverse direction.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 228)]
public struct TcpInfo
{
    /// <summary>IPPROTO_TCP and TCP_INFO.</summary>
    public const int Level = 6;
    public const int Option = 11;

    [FieldOffset(0)] public byte State;
    /// <summary>0 open, 1 disorder, 2 CWR, 3 recovery, 4 loss.</summary>
    [FieldOffset(1)] public byte CaState;
    [FieldOffset(2)] public byte Retransmits;
    [FieldOffset(8)] public uint Rto;
    [FieldOffset(16)] public uint SndMss;
    [FieldOffset(24)] public uint Unacked;
    [FieldOffset(32)] public uint Lost;
    [FieldOffset(36)] public uint Retrans;
    [FieldOffset(68)] public uint Rtt;
    [FieldOffset(72)] public uint RttVar;
    [FieldOffset(76)] public uint SndSsthresh;
    [FieldOffset(80)] public uint SndCwnd;
    [FieldOffset(92)] public uint RcvRtt;
    [FieldOffset(100)] public uint TotalRetrans;
    [FieldOffset(104)] public ulong PacingRate;
    [FieldOffset(120)] public ulong BytesAcked;
    [FieldOffset(128)] public ulong BytesReceived;
    [FieldOffset(136)] public uint SegsOut;
    [FieldOffset(140)] public uint SegsIn;
    [FieldOffset(148)] public uint MinRtt;
    /// <summary>Bytes per second.</summary>
    [FieldOffset(160)] public ulong DeliveryRate;
    [FieldOffset(176)] public ulong RwndLimited;
    [FieldOffset(184)] public ulong SndbufLimited;
    [FieldOffset(200)] public ulong BytesSent;
    [FieldOffset(208)] public ulong BytesRetrans;
    /// <summary>Data packets that arrived out of order (after a hole): on a receiver, the sign that the path
    /// dropped a packet. Zero where the kernel fills less of the struct.</summary>
    [FieldOffset(224)] public uint RcvOooPack;

    /// <summary>Size of the struct as declared here.</summary>
    public static int Length => Marshal.SizeOf<TcpInfo>();

    /// <summary>TCP_INFO of a TCP socket (or of an MPTCP socket's first subflow after a fallback to TCP);
    /// null when the socket gives none.</summary>
    public static TcpInfo? Read(Socket socket)
    {
        var info = default(TcpInfo);
        var bytes = MemoryMarshal.AsBytes(new Span<TcpInfo>(ref info));
        try
        {
            return socket.GetRawSocketOption(Level, Option, bytes) > 0 ? info : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }
}
