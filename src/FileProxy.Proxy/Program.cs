using System.CommandLine;
using System.Net;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Hosting;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Tier;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using FileProxy.Proxy.Tier;
using Serilog;

var upstreamHostArgument = CommandLine.HostArgument("UPSTREAM_HOST", "Origin server's host (default 127.0.0.1)");
var upstreamPortArgument = CommandLine.PortArgument("UPSTREAM_PORT", "Origin server's port (default 5010)");
upstreamPortArgument.Arity = ArgumentArity.ZeroOrOne;
var listenPortArgument = CommandLine.PortArgument("LISTEN_PORT", "Port to listen on (default 5000)");
listenPortArgument.Arity = ArgumentArity.ZeroOrOne;
var upstreamHost = CommandLine.HostOption("--upstream-host", "Same as UPSTREAM_HOST", "127.0.0.1");
var upstreamPort = CommandLine.PortOption("--upstream-port", "Same as UPSTREAM_PORT", 5010);
var port = CommandLine.PortOption("--port", "Same as LISTEN_PORT", ProxyServer.DefaultPort);
var cacheDir = new Option<DirectoryInfo>("--cache-dir")
{
    Description = "Cache directory (created if missing; a non-empty directory must be one the proxy made)",
    HelpName = "dir",
    DefaultValueFactory = _ => new DirectoryInfo("cache"),
};
var maxSize = CommandLine.SizeOption("--cache-max-size", "Most bytes to keep cached, e.g. 512MiB, 10GiB, 1TB (default: no limit); least recently used files go first");
var revalidate = CommandLine.DurationOption("--revalidate-after",
    "Ask the origin whether a cached file changed once it is older than this (0s: on every request)", TimeSpan.FromMinutes(1));
var serveStale = CommandLine.SwitchOption("--serve-stale-on-error",
    "Serve the cached copy, with a warning, when the origin cannot be reached to revalidate it", true);
var allowPurge = new Option<bool>("--allow-purge") { Description = "Let clients remove cache entries with 'client purge'" };
var noFsync = new Option<bool>("--no-fsync") { Description = "Skip fsync before committing entries (faster; a power cut may then lose recent entries)" };
var upstreamDefaults = new FileClientOptions();
var upstreamConnectTimeout = CommandLine.DurationOption("--upstream-connect-timeout", "Give up connecting to the origin after this long", upstreamDefaults.ConnectTimeout);
var upstreamResponseTimeout = CommandLine.DurationOption("--upstream-response-timeout",
    "Give up when the origin's (or a tier peer's) answer does not start this long after asking", upstreamDefaults.ResponseTimeout);
var upstreamIdleTimeout = CommandLine.DurationOption("--upstream-idle-timeout", "Give up when a fetch from the origin receives no byte for this long",
    upstreamDefaults.IdleTimeout);
var listening = new ListeningOptions();
var upstreamMptcp = new Option<bool>("--upstream-mptcp") { Description = "Connect to the origin with a Linux MPTCP socket" };
var maxFills = new Option<int>("--max-fills")
{
    Description = "Upstream connections busy at once (fills, pass-through relays, revalidations, STATs); more wait their turn holding no buffer, file or connection",
    DefaultValueFactory = _ => new CacheOptions { Directory = "" }.MaxConcurrentFills,
};
var upstreamTls = SecurityOptions.Tls("--upstream-tls", "Connect to the origin with TLS (system trust store, or --upstream-tls-ca)");
var upstreamTlsCa = SecurityOptions.TlsCa("--upstream-tls-ca", "PEM certificates to trust for the origin's TLS; implies --upstream-tls (default: system store)");
var upstreamTokenFile = SecurityOptions.TokenFile("--upstream-token-file", "File holding the token to present to the origin");
var upstreamAddress = new Option<string[]>("--upstream-address")
{
    Description = "Another address of the same origin, as HOST:PORT (repeatable): misses are then fetched over one connection per address (see --upstream-multipath) (default: none)",
    Arity = ArgumentArity.OneOrMore,
    AllowMultipleArgumentsPerToken = false,
};
var upstreamMultipath = new Option<string>("--upstream-multipath")
{
    Description = "With --upstream-address: 'adaptive' (default) splits each miss across the addresses and drops to one when the others only add congestion; 'all' always uses every one; 'off' uses the main upstream only",
    DefaultValueFactory = _ => "adaptive",
};
upstreamMultipath.AcceptOnlyFromAmong("off", "adaptive", "all");
var tierDefaults = new TierOptions { Peers = [] };
var peer = new Option<string[]>("--peer")
{
    Description = "A proxy of this one's tier, as HOST:PORT (repeat it for every proxy, this one included, the same list on each): misses for a name another peer owns are fetched from it (default: none)",
    Arity = ArgumentArity.OneOrMore,
    AllowMultipleArgumentsPerToken = false,
};
var self = new Option<string?>("--self")
{
    Description = "Which --peer is this proxy (default: found by the listening port: the --peer with that port on an address of this machine)",
    HelpName = "host:port",
};
var peerDownTime = CommandLine.DurationOption("--peer-down-time",
    "A peer that does not answer is left out this long, its names going to the next peer, then tried again", tierDefaults.DownFor);
var peerConnectTimeout = CommandLine.DurationOption("--peer-connect-timeout",
    "Give up connecting to a peer (and mark it down) after this long", tierDefaults.Connection.ConnectTimeout);
var peerTlsCa = SecurityOptions.TlsCa("--peer-tls-ca",
    "PEM certificates to trust for the peers' TLS, which --tls-cert or this option turns on (default: system store)");
var keepPeerCopies = CommandLine.SwitchOption("--keep-peer-copies",
    "Keep a copy of the names other peers own once fetched from them (false: relay them from their owner every time)", tierDefaults.KeepCopies);
var logLevel = CommandLine.LogLevelOption();

var command = new RootCommand("FileProxy caching proxy: serves files from its cache directory and fetches misses from the origin, once per file however many clients ask.")
{
    upstreamHostArgument, upstreamPortArgument, listenPortArgument,
    upstreamHost, upstreamPort, port, cacheDir, maxSize, revalidate, serveStale, allowPurge, noFsync,
    upstreamMptcp, maxFills, upstreamTls, upstreamTlsCa, upstreamTokenFile, upstreamConnectTimeout, upstreamResponseTimeout, upstreamIdleTimeout, upstreamAddress, upstreamMultipath,
    peer, self, peerDownTime, peerConnectTimeout, peerTlsCa, keepPeerCopies, logLevel,
};
listening.AddTo(command);
command.Validators.Add(result =>
{
    if (result.GetResult(upstreamHostArgument) is { Tokens.Count: > 0 } && result.GetResult(upstreamHost) is { Implicit: false })
    {
        result.AddError("give the upstream host either as UPSTREAM_HOST or as --upstream-host, not both");
    }
    if (result.GetResult(upstreamPortArgument) is { Tokens.Count: > 0 } && result.GetResult(upstreamPort) is { Implicit: false })
    {
        result.AddError("give the upstream port either as UPSTREAM_PORT or as --upstream-port, not both");
    }
    if (result.GetResult(listenPortArgument) is { Tokens.Count: > 0 } && result.GetResult(port) is { Implicit: false })
    {
        result.AddError("give the listening port either as LISTEN_PORT or as --port, not both");
    }
    foreach (var text in result.GetValue(upstreamAddress) ?? [])
    {
        if (!TryParseAddress(text, out _))
        {
            result.AddError($"--upstream-address '{text}' is not HOST:PORT");
        }
    }
    foreach (var text in (result.GetValue(peer) ?? []).Append(result.GetValue(self)).OfType<string>())
    {
        if (!TierPeer.TryParse(text, out _))
        {
            result.AddError($"peer '{text}' is not HOST:PORT");
        }
    }
    if (result.GetValue(peerTlsCa) is not null && (result.GetValue(peer)?.Length ?? 0) == 0)
    {
        result.AddError("--peer-tls-ca needs the tier's --peer list");
    }
    if (result.GetValue(self) is not null && (result.GetValue(peer)?.Length ?? 0) == 0)
    {
        result.AddError("--self needs the tier's --peer list");
    }
    if ((result.GetValue(upstreamAddress)?.Length ?? 0) + 1 > MultipathFetcher.MaxSubflows)
    {
        result.AddError($"at most {MultipathFetcher.MaxSubflows - 1} --upstream-address options");
    }
});
command.SetAction((parse, cancellationToken) => CommandLine.RunServerAsync(parse.GetValue(logLevel), () =>
{
    var host = parse.GetValue(upstreamHostArgument) ?? parse.GetValue(upstreamHost)!;
    var originPort = parse.GetResult(upstreamPortArgument) is { Tokens.Count: > 0 } ? parse.GetValue(upstreamPortArgument) : parse.GetValue(upstreamPort);
    var listenPort = parse.GetResult(listenPortArgument) is { Tokens.Count: > 0 } ? parse.GetValue(listenPortArgument) : parse.GetValue(port);
    var cache = new CacheOptions
    {
        Directory = parse.GetValue(cacheDir)!.FullName,
        MaxBytes = parse.GetResult(maxSize) is null ? long.MaxValue : parse.GetValue(maxSize),
        RevalidateAfter = parse.GetValue(revalidate),
        ServeStaleOnError = parse.GetValue(serveStale),
        AllowPurge = parse.GetValue(allowPurge),
        Fsync = !parse.GetValue(noFsync),
        MaxConcurrentFills = Math.Max(1, parse.GetValue(maxFills)),
    };
    var upstreamOptions = new FileClientOptions
    {
        Mptcp = parse.GetValue(upstreamMptcp),
        Tls = parse.GetValue(upstreamTls) || parse.GetValue(upstreamTlsCa) is not null,
        TlsTrust = SecurityOptions.LoadTrust(parse.GetValue(upstreamTlsCa)),
        Token = SecurityOptions.ReadToken(parse.GetValue(upstreamTokenFile)),
        ConnectTimeout = parse.GetValue(upstreamConnectTimeout),
        ResponseTimeout = parse.GetValue(upstreamResponseTimeout),
        IdleTimeout = parse.GetValue(upstreamIdleTimeout),
    };
    var extra = parse.GetValue(upstreamAddress) ?? [];
    var multipathMode = parse.GetValue(upstreamMultipath) switch
    {
        "off" => MultipathMode.Off,
        "all" => MultipathMode.All,
        _ => MultipathMode.Adaptive,
    };
    if (extra.Length > 0 && multipathMode != MultipathMode.Off)
    {
        List<(string Host, int Port)> addresses = [(host, originPort)];
        foreach (var text in extra)
        {
            if (TryParseAddress(text, out var address))
            {
                addresses.Add(address);
            }
        }
        cache = cache with
        {
            Multipath = new UpstreamMultipath(addresses, new MultipathOptions
            {
                Mode = multipathMode,
                Connection = upstreamOptions, // TLS, token and timeouts on every subflow too
            }),
        };
        Log.Information("Misses are fetched over {Count} addresses of the origin, multipath {Mode}", addresses.Count, multipathMode);
    }
    var serverOptions = listening.Create(parse, listenPort);
    if (parse.GetValue(peer) is { Length: > 0 } peerTexts)
    {
        cache = cache with { Tier = TierFrom(parse, peerTexts, serverOptions) };
    }
    Log.Information("Upstream {Host}:{Port}", host, originPort);
    var (server, source) = ProxyServer.Create(host, originPort, cache, serverOptions, upstreamOptions);
    return (server, source);
}, cancellationToken));
return await CommandLine.RunAsync(command, args);

// The tier's options: the peers, which one is this proxy, and how to reach the others (the proxy's own token, the
// upstream's response and idle timeouts).
TierOptions TierFrom(ParseResult parse, string[] peerTexts, ProtocolServerOptions serverOptions)
{
    var peers = peerTexts.Select(text => TierPeer.TryParse(text, out var parsed) ? parsed : default).DistinctBy(p => p.Id).ToArray();
    TierPeer? named = parse.GetValue(self) is { } selfText && TierPeer.TryParse(selfText, out var selfPeer) ? selfPeer : null;
    var me = TierMembership.FindSelf(peers, named, serverOptions.EndPoint);
    if (me is null)
    {
        Log.Warning("This proxy ({EndPoint}) is none of the --peer addresses: it owns no names and fetches every miss from its owner (give --self if it should be one of them)",
            serverOptions.EndPoint);
    }
    Log.Information("Tier of {Count} proxies: {Peers}; this proxy is {Self}", peers.Length, string.Join(", ", peers.Select(p => p.Id)),
        me?.Id ?? "none of them");
    return new TierOptions
    {
        Peers = peers,
        Self = me,
        DownFor = parse.GetValue(peerDownTime),
        KeepCopies = parse.GetValue(keepPeerCopies),
        Connection = new FileClientOptions
        {
            ConnectTimeout = parse.GetValue(peerConnectTimeout),
            ResponseTimeout = parse.GetValue(upstreamResponseTimeout),
            IdleTimeout = parse.GetValue(upstreamIdleTimeout),
            Token = serverOptions.Token,
            // The peers serve as this proxy does: over TLS when it does (or when told whom to trust for it).
            Tls = serverOptions.TlsCertificate is not null || parse.GetValue(peerTlsCa) is not null,
            TlsTrust = SecurityOptions.LoadTrust(parse.GetValue(peerTlsCa)),
        },
    };
}

// HOST:PORT, [IPv6]:PORT.
static bool TryParseAddress(string text, out (string Host, int Port) address)
{
    address = default;
    var colon = text.LastIndexOf(':');
    if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
        || port is < 1 or > 65535)
    {
        return false;
    }
    var host = text[..colon];
    if (host.StartsWith('[') && host.EndsWith(']'))
    {
        host = host[1..^1];
    }
    else if (host.Contains(':', StringComparison.Ordinal))
    {
        return false;
    }
    address = (host, port);
    return host.Length > 0;
}
