using System.Globalization;
using System.Net;

namespace FileProxy.Protocol.Transport;

/// <summary>How a connection travels, as far as MPTCP goes.</summary>
public enum MptcpState
{
    /// <summary>Plain TCP was asked for.</summary>
    NotRequested,
    /// <summary>MPTCP was asked for, but this machine cannot make MPTCP sockets.</summary>
    Unavailable,
    /// <summary>The socket is MPTCP but the connection fell back to TCP (the peer or a middlebox lacks MPTCP).</summary>
    FellBack,
    /// <summary>The connection is MPTCP.</summary>
    Active,
}

/// <summary>A connection's MPTCP state and its subflow count at the time it was read.</summary>
public readonly record struct MptcpStatus(MptcpState State, int Subflows, string? Reason = null)
{
    /// <summary>For result lines: "over MPTCP, 2 subflows", "MPTCP requested, peer fell back to TCP", …;
    /// null when MPTCP was not requested.</summary>
    public string? Describe() => State switch
    {
        MptcpState.Active => string.Create(CultureInfo.InvariantCulture,
            $"over MPTCP, {Subflows} subflow{(Subflows == 1 ? "" : "s")}"),
        MptcpState.FellBack => "MPTCP requested, peer fell back to TCP",
        MptcpState.Unavailable => "MPTCP unavailable here, over TCP",
        _ => null,
    };
}

/// <summary>One subflow of an MPTCP connection: its addresses and TCP figures.</summary>
public sealed record MptcpSubflow(int Index, IPEndPoint? Local, IPEndPoint? Remote, TcpInfo Tcp);
