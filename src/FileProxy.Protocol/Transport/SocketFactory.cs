using System.Net.Sockets;
using FileProxy.Protocol.Native;
using Serilog;

namespace FileProxy.Protocol.Transport;

/// <summary>
/// Creates every stream socket the programs listen or connect on: plain TCP, or Linux MPTCP when asked.
/// .NET refuses <c>new Socket(family, Stream, (ProtocolType)262)</c> before the kernel sees it, so an MPTCP socket
/// is opened with libc's socket(2) and wrapped in a <see cref="SafeSocketHandle"/>; listen, accept, connect and
/// sendfile (SendPacketsAsync) all work on it. Where the kernel cannot make one (no MPTCP, net.mptcp.enabled = 0),
/// the socket is plain TCP and one warning per process names the reason; later sockets do not try again.
/// </summary>
public sealed class SocketFactory
{
    /// <summary>IPPROTO_MPTCP.</summary>
    public const int MptcpProtocol = 262;

    private const int AfInet = 2;
    private const int AfInet6 = 10;
    private const int SockStream = 1;
    private const int Einval = 22;
    private const int Enoprotoopt = 92;
    private const int Eprotonosupport = 93;
    private const int Eafnosupport = 97;

    private readonly Func<int, int, int, int> _openSocket;
    private readonly ILogger? _log;
    private readonly string? _forcedUnavailable;
    private string? _unavailableReason;
    private int _warned;

    /// <summary>The factory of this process. FILEPROXY_MPTCP_UNAVAILABLE=reason makes it behave as on a kernel
    /// without MPTCP (for tests and for trying the fallback; the system's setting is left alone).</summary>
    public static SocketFactory Shared { get; } =
        new(Posix.OpenSocket, log: null, Environment.GetEnvironmentVariable("FILEPROXY_MPTCP_UNAVAILABLE"));

    /// <param name="openSocket">socket(2): returns the descriptor or the negated errno.</param>
    /// <param name="log">Where the fallback warning goes; null for the global logger at the time of the warning.</param>
    /// <param name="forcedUnavailable">When set, MPTCP is treated as unavailable for this reason.</param>
    internal SocketFactory(Func<int, int, int, int> openSocket, ILogger? log, string? forcedUnavailable = null)
    {
        _openSocket = openSocket;
        _log = log;
        _forcedUnavailable = string.IsNullOrWhiteSpace(forcedUnavailable) ? null : forcedUnavailable;
    }

    /// <summary>Why MPTCP sockets cannot be made here, once a request for one failed; null otherwise.</summary>
    public string? UnavailableReason => Volatile.Read(ref _unavailableReason);

    /// <summary>A new stream socket for <paramref name="family"/>: MPTCP when <paramref name="mptcp"/> and the kernel
    /// can make one, TCP otherwise.</summary>
    public Socket Create(AddressFamily family, bool mptcp)
    {
        if (mptcp && TryCreateMptcp(family) is { } socket)
        {
            return socket;
        }
        return new Socket(family, SocketType.Stream, ProtocolType.Tcp);
    }

    private Socket? TryCreateMptcp(AddressFamily family)
    {
        if (UnavailableReason is not null)
        {
            return null;
        }
        if (_forcedUnavailable is not null)
        {
            Unavailable($"{_forcedUnavailable} (FILEPROXY_MPTCP_UNAVAILABLE)");
            return null;
        }
        if (!OperatingSystem.IsLinux())
        {
            Unavailable("MPTCP sockets exist only on Linux");
            return null;
        }
        var domain = family switch
        {
            AddressFamily.InterNetwork => AfInet,
            AddressFamily.InterNetworkV6 => AfInet6,
            _ => throw new ArgumentException($"no stream sockets for {family}", nameof(family)),
        };
        var fd = _openSocket(domain, SockStream, MptcpProtocol);
        if (fd >= 0)
        {
            return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        }
        if (FallbackReason(-fd) is { } reason)
        {
            Unavailable(reason);
            return null;
        }
        // Out of descriptors or memory: not a lack of MPTCP, and TCP would fail the same way.
        throw new SocketException((int)ToSocketError(-fd));
    }

    /// <summary>Why MPTCP is unavailable when socket(2) failed with <paramref name="errno"/>; null when the error
    /// is not about MPTCP (such as running out of descriptors).</summary>
    internal static string? FallbackReason(int errno) => errno switch
    {
        Eprotonosupport => "the kernel does not support MPTCP (EPROTONOSUPPORT)",
        Enoprotoopt when MptcpDisabledBySysctl() => "MPTCP is disabled (net.mptcp.enabled = 0)",
        Enoprotoopt => "the kernel refused an MPTCP socket (ENOPROTOOPT; is net.mptcp.enabled 0?)",
        Einval => "the kernel does not know protocol 262, MPTCP (EINVAL)",
        Eafnosupport => "the kernel has no MPTCP for this address family (EAFNOSUPPORT)",
        _ => null,
    };

    private void Unavailable(string reason)
    {
        Interlocked.CompareExchange(ref _unavailableReason, reason, null);
        if (Interlocked.Exchange(ref _warned, 1) == 0)
        {
            (_log ?? Log.Logger).ForContext<SocketFactory>()
                .Warning("MPTCP was requested but is unavailable: {Reason}; using plain TCP", reason);
        }
    }

    private static bool MptcpDisabledBySysctl()
    {
        try
        {
            return File.ReadAllText("/proc/sys/net/mptcp/enabled").Trim() == "0";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static SocketError ToSocketError(int errno) => errno switch
    {
        Errno.ENFILE or Errno.EMFILE => SocketError.TooManyOpenSockets,
        Errno.ENOMEM or Errno.ENOBUFS => SocketError.NoBufferSpaceAvailable,
        Errno.EPERM or Errno.EACCES => SocketError.AccessDenied,
        _ => SocketError.SocketError,
    };
}
