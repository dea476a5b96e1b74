using System.Runtime.InteropServices;

namespace FileProxy.Protocol.Transport;

/// <summary>
/// Linux's <c>struct mptcp_info</c> (include/uapi/linux/mptcp.h), as getsockopt(SOL_MPTCP, MPTCP_INFO) returns it
/// for a connection that is still MPTCP. Fields after <see cref="BytesAcked"/> came with kernel 6.10; an older
/// kernel leaves them 0.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct MptcpInfo
{
    /// <summary>Additional subflows (the first one not counted); see <see cref="SubflowsTotal"/>.</summary>
    public byte Subflows;
    public byte AddAddrSignal;
    public byte AddAddrAccepted;
    public byte SubflowsMax;
    public byte AddAddrSignalMax;
    public byte AddAddrAcceptedMax;
    public uint Flags;
    public uint Token;
    public ulong WriteSeq;
    public ulong SndUna;
    public ulong RcvNxt;
    public byte LocalAddrUsed;
    public byte LocalAddrMax;
    public byte CsumEnabled;
    public uint Retransmits;
    public ulong BytesRetrans;
    public ulong BytesSent;
    public ulong BytesReceived;
    public ulong BytesAcked;
    /// <summary>All subflows, the first one included (kernel 6.10+; 0 before).</summary>
    public byte SubflowsTotal;
    private readonly byte _reserved0;
    private readonly byte _reserved1;
    private readonly byte _reserved2;
    public uint LastDataSent;
    public uint LastDataRecv;
    public uint LastAckRecv;
}

/// <summary>The header of the MPTCP_TCPINFO and MPTCP_SUBFLOW_ADDRS answers (<c>struct mptcp_subflow_data</c>),
/// followed by one element per subflow.</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal struct MptcpSubflowData
{
    /// <summary>Set by us: the size of this header.</summary>
    public uint SizeSubflowData;
    /// <summary>Set by the kernel: the connection's subflows (more than were copied if the buffer was short).</summary>
    public uint NumSubflows;
    /// <summary>Set by the kernel: its size of one element.</summary>
    public uint SizeKernel;
    /// <summary>Set by us: our size of one element.</summary>
    public uint SizeUser;
}
