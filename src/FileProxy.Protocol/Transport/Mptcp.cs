using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Serilog;
using Serilog.Events;

namespace FileProxy.Protocol.Transport;

/// <summary>Reads an MPTCP connection's state and per-subflow figures (getsockopt SOL_MPTCP).</summary>
public static class Mptcp
{
    /// <summary>SOL_MPTCP and its options.</summary>
    private const int SolMptcp = 284;
    private const int MptcpInfoOption = 1;
    private const int MptcpTcpInfoOption = 2;
    private const int MptcpSubflowAddrsOption = 3;

    /// <summary>Size of <c>struct mptcp_subflow_addrs</c>: two <c>sockaddr_storage</c>, local then remote.</summary>
    private const int SubflowAddrsLength = 256;
    private const int SockaddrStorageLength = 128;
    private const int MaxSubflows = 8;

    private const int SolSocket = 1;
    private const int SoProtocol = 38;

    /// <summary>Whether <paramref name="socket"/> is an MPTCP socket (whatever its connection became), asked of the
    /// kernel (SO_PROTOCOL): .NET's <see cref="Socket.ProtocolType"/> does not know protocol 262.</summary>
    public static bool IsMptcpSocket(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        Span<byte> protocol = stackalloc byte[sizeof(int)];
        try
        {
            return socket.GetRawSocketOption(SolSocket, SoProtocol, protocol) == sizeof(int)
                && MemoryMarshal.Read<int>(protocol) == SocketFactory.MptcpProtocol;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>MPTCP_INFO of a connection that is MPTCP; null for TCP sockets and connections that fell back.</summary>
    public static MptcpInfo? ReadInfo(Socket socket)
    {
        if (!IsMptcpSocket(socket))
        {
            return null;
        }
        var info = default(MptcpInfo);
        try
        {
            // A connection that fell back to TCP answers SOL_MPTCP with an error (EOPNOTSUPP or ENOPROTOOPT).
            return socket.GetRawSocketOption(SolMptcp, MptcpInfoOption, MemoryMarshal.AsBytes(new Span<MptcpInfo>(ref info))) > 0
                ? info
                : null;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>The connection's state now; <paramref name="requested"/> says whether MPTCP was asked for.</summary>
    public static MptcpStatus StatusOf(Socket socket, bool requested, SocketFactory? factory = null)
    {
        if (!requested)
        {
            return new MptcpStatus(MptcpState.NotRequested, 1);
        }
        if (!IsMptcpSocket(socket))
        {
            return new MptcpStatus(MptcpState.Unavailable, 1, (factory ?? SocketFactory.Shared).UnavailableReason ?? "unknown reason");
        }
        if (ReadInfo(socket) is not { } info)
        {
            return new MptcpStatus(MptcpState.FellBack, 1);
        }
        var subflows = SubflowCount(socket);
        return new MptcpStatus(MptcpState.Active, subflows > 0 ? subflows : info.SubflowsTotal > 0 ? info.SubflowsTotal : info.Subflows + 1);
    }

    /// <summary>Every subflow of an MPTCP connection with its TCP figures; empty for anything else.</summary>
    public static IReadOnlyList<MptcpSubflow> Subflows(Socket socket)
    {
        if (!IsMptcpSocket(socket))
        {
            return [];
        }
        var tcp = ReadArray(socket, MptcpTcpInfoOption, TcpInfo.Length, out var tcpCount);
        var addresses = ReadArray(socket, MptcpSubflowAddrsOption, SubflowAddrsLength, out var addressCount);
        var subflows = new List<MptcpSubflow>(tcpCount);
        for (var i = 0; i < tcpCount; i++)
        {
            var info = MemoryMarshal.Read<TcpInfo>(tcp.AsSpan(i * TcpInfo.Length, TcpInfo.Length));
            IPEndPoint? local = null, remote = null;
            if (i < addressCount)
            {
                var element = addresses.AsSpan(i * SubflowAddrsLength, SubflowAddrsLength);
                local = ToEndPoint(element[..SockaddrStorageLength]);
                remote = ToEndPoint(element[SockaddrStorageLength..]);
            }
            subflows.Add(new MptcpSubflow(i, local, remote, info));
        }
        return subflows;
    }

    /// <summary>At Debug: the connection's totals and one line per subflow, for the end of a transfer.</summary>
    public static void LogSubflows(ILogger log, Socket socket)
    {
        if (!log.IsEnabled(LogEventLevel.Debug) || ReadInfo(socket) is not { } info)
        {
            return;
        }
        var subflows = Subflows(socket);
        log.Debug("MPTCP at the end of a transfer: {Subflows} subflows, {BytesSent} bytes sent, {BytesReceived} received, {BytesRetrans} retransmitted",
            subflows.Count, info.BytesSent, info.BytesReceived, info.BytesRetrans);
        foreach (var subflow in subflows)
        {
            var tcp = subflow.Tcp;
            log.Debug("MPTCP subflow {Subflow} {LocalEndPoint} -> {RemoteEndPoint}: {BytesSent} bytes sent, {BytesReceived} received, " +
                "rtt {RttMs:0.###} ms (min {MinRttMs:0.###}), cwnd {Cwnd}, {TotalRetrans} segments retransmitted, delivery {DeliveryMbps:0.#} Mbit/s, " +
                "limited by the receive window {RwndLimitedMs:0.#} ms, by the send buffer {SndbufLimitedMs:0.#} ms",
                subflow.Index, subflow.Local, subflow.Remote, tcp.BytesSent, tcp.BytesReceived, tcp.Rtt / 1000.0,
                tcp.MinRtt / 1000.0, tcp.SndCwnd, tcp.TotalRetrans, tcp.DeliveryRate * 8 / 1e6, tcp.RwndLimited / 1000.0,
                tcp.SndbufLimited / 1000.0);
        }
    }

    private static int SubflowCount(Socket socket)
    {
        ReadArray(socket, MptcpSubflowAddrsOption, SubflowAddrsLength, out var count);
        return count;
    }

    /// <summary>An MPTCP_TCPINFO or MPTCP_SUBFLOW_ADDRS answer: the elements (each <paramref name="elementLength"/>
    /// bytes) and how many there are.</summary>
    private static byte[] ReadArray(Socket socket, int option, int elementLength, out int count)
    {
        var headerLength = Marshal.SizeOf<MptcpSubflowData>();
        var buffer = new byte[headerLength + (MaxSubflows * elementLength)];
        var header = new MptcpSubflowData { SizeSubflowData = (uint)headerLength, SizeUser = (uint)elementLength };
        MemoryMarshal.Write(buffer, in header);
        int length;
        try
        {
            length = socket.GetRawSocketOption(SolMptcp, option, buffer);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            count = 0;
            return [];
        }
        header = MemoryMarshal.Read<MptcpSubflowData>(buffer);
        count = Math.Min((int)header.NumSubflows, Math.Max(0, (length - headerLength) / elementLength));
        return buffer[headerLength..];
    }

    private static IPEndPoint? ToEndPoint(ReadOnlySpan<byte> sockaddr)
    {
        var family = MemoryMarshal.Read<ushort>(sockaddr);
        var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
        return family switch
        {
            2 => new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), port),
            10 => new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16)), port),
            _ => null,
        };
    }
}
