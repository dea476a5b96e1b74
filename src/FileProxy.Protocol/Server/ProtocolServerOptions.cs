using System.Net;
using System.Net.Sockets;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Server;

public sealed record ProtocolServerOptions
{
    public IPEndPoint EndPoint { get; init; } = new(IPAddress.Any, 0);

    /// <summary>Connections served at once; one more is answered Busy and closed.</summary>
    public int MaxConnections { get; init; } = 4096;

    /// <summary>Connections one client address may hold at once (0: no limit); one more is answered Busy and
    /// closed, so a single host cannot take every one of <see cref="MaxConnections"/>.</summary>
    public int MaxConnectionsPerAddress { get; init; } = DefaultMaxConnectionsPerAddress;

    /// <summary>The default of <see cref="MaxConnectionsPerAddress"/>: a quarter of the default
    /// <see cref="MaxConnections"/>, far above what one well-behaved client or a proxy in front needs.</summary>
    public const int DefaultMaxConnectionsPerAddress = 1024;

    public TimeSpan HeaderTimeout { get; init; } = ProtocolLimits.DefaultHeaderTimeout;

    public TimeSpan IdleTimeout { get; init; } = ProtocolLimits.DefaultIdleTimeout;

    /// <summary>On stop, how long running transfers may go on before their connections are cut.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Listen on a Linux MPTCP socket (plain TCP peers still connect).</summary>
    public bool Mptcp { get; init; }

    /// <summary>Speak TLS on every connection with this certificate; null for plain TCP.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? TlsCertificate { get; init; }

    /// <summary>A shared secret every connection must present (AUTH) before any other request; null for none.</summary>
    public string? Token { get; init; }

    /// <summary>Where to serve Prometheus metrics over HTTP (<c>/metrics</c>); null for nowhere. Port 0 takes a free
    /// port, logged and in <see cref="ProtocolServer.MetricsEndPoint"/>.</summary>
    public IPEndPoint? MetricsEndPoint { get; init; }

    /// <summary>Reads how many log lines this process has dropped so far (a queue of lines that standard error was too
    /// slow to take); when set, STATS and the metrics report it as <c>log_lines_dropped</c>. Null: not reported.</summary>
    public Func<long>? LogLinesDropped { get; init; }

    /// <summary>A socket already bound and listening (socket activation, tests that own their ports): the server
    /// accepts on it instead of binding <see cref="EndPoint"/>, and closes it when it stops.</summary>
    public Socket? ListenSocket { get; init; }
}
