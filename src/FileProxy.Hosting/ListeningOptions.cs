using System.CommandLine;
using System.Net;
using FileProxy.Protocol.Server;

namespace FileProxy.Hosting;

/// <summary>
/// The listening side's options, the same on the server and the proxy (address, connection limits, timeouts, MPTCP,
/// TLS, token), defined once, and the <see cref="ProtocolServerOptions"/> they make. The port stays each program's
/// own (the proxy also takes it as a positional argument).
/// </summary>
public sealed class ListeningOptions
{
    private readonly Option<IPAddress> _listen = CommandLine.ListenAddressOption();
    private readonly Option<int> _maxConnections = new("--max-connections")
    {
        Description = "Connections served at once; more are answered Busy",
        DefaultValueFactory = _ => new ProtocolServerOptions().MaxConnections,
    };
    private readonly Option<int> _maxPerAddress = CommandLine.MaxConnectionsPerAddressOption();
    private readonly Option<Duration> _headerTimeout = CommandLine.HeaderTimeoutOption();
    private readonly Option<Duration> _idleTimeout = CommandLine.IdleTimeoutOption();
    private readonly Option<Duration> _drain = CommandLine.DurationOption("--drain-timeout",
        "On Ctrl+C/SIGTERM, how long running transfers may finish", new ProtocolServerOptions().DrainTimeout);
    private readonly Option<bool> _mptcp = new("--mptcp") { Description = "Listen on a Linux MPTCP socket (TCP clients still connect)" };
    private readonly Option<FileInfo?> _tlsCert = SecurityOptions.TlsCertificate();
    private readonly Option<FileInfo?> _tlsKey = SecurityOptions.TlsKey();
    private readonly Option<FileInfo?> _tokenFile = SecurityOptions.TokenFile();
    private readonly Option<IPEndPoint?> _metricsListen = new("--metrics-listen")
    {
        Description = "Serve Prometheus metrics at http://ADDR:PORT/metrics, e.g. 127.0.0.1:9464 or [::]:9464; port 0 takes a free port, which is logged (default: none)",
        HelpName = "addr:port",
        CustomParser = result =>
        {
            var text = result.Tokens.Single().Value;
            if (TryParseEndPoint(text, out var endPoint))
            {
                return endPoint;
            }
            result.AddError($"--metrics-listen '{text}' is not ADDR:PORT (an IP address and a port, e.g. 127.0.0.1:9464 or [::1]:9464)");
            return null;
        },
    };

    /// <summary>Adds every option to <paramref name="command"/>, with the check that a certificate comes with its key.</summary>
    public void AddTo(Command command)
    {
        foreach (Option option in (Option[])[_listen, _maxConnections, _maxPerAddress, _headerTimeout, _idleTimeout, _drain, _mptcp, _tlsCert, _tlsKey, _tokenFile, _metricsListen])
        {
            command.Options.Add(option);
        }
        SecurityOptions.RequireBoth(command, _tlsCert, _tlsKey);
    }

    /// <summary>The server options the command line asks for. Throws <see cref="IOException"/> (a start error) when
    /// the certificate or the token file cannot be read.</summary>
    public ProtocolServerOptions Create(ParseResult parse, int port) => new()
    {
        EndPoint = new IPEndPoint(parse.GetValue(_listen)!, port),
        MaxConnections = parse.GetValue(_maxConnections),
        MaxConnectionsPerAddress = parse.GetValue(_maxPerAddress),
        HeaderTimeout = parse.GetValue(_headerTimeout),
        IdleTimeout = parse.GetValue(_idleTimeout),
        DrainTimeout = parse.GetValue(_drain),
        Mptcp = parse.GetValue(_mptcp),
        TlsCertificate = SecurityOptions.LoadCertificate(parse.GetValue(_tlsCert), parse.GetValue(_tlsKey)),
        Token = SecurityOptions.ReadToken(parse.GetValue(_tokenFile)),
        MetricsEndPoint = parse.GetValue(_metricsListen),
        LogLinesDropped = CommandLine.LogLinesDropped,
    };

    /// <summary>ADDR:PORT with an IP address (IPv6 in brackets) and an explicit port.</summary>
    internal static bool TryParseEndPoint(string text, out IPEndPoint endPoint)
    {
        endPoint = null!;
        var colon = text.LastIndexOf(':');
        var address = colon > 0 ? text[..colon] : "";
        if (address.Contains(':', StringComparison.Ordinal) && !(address.StartsWith('[') && address.EndsWith(']')))
        {
            return false; // an IPv6 address without brackets: its last group would be taken for the port
        }
        if (colon <= 0 || colon == text.Length - 1 || !IPEndPoint.TryParse(text, out var parsed))
        {
            return false;
        }
        endPoint = parsed;
        return true;
    }
}
