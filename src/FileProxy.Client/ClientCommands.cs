using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Hosting;
using FileProxy.Protocol.Wire;
using Serilog;

namespace FileProxy.Client;

/// <summary>The client's command line: fetch a file (the default), stat, stats and purge.</summary>
internal static class ClientCommands
{
    private static readonly Option<PeerAddress[]> Proxy = new("--proxy", "-p")
    {
        HelpName = "host:port",
        Description = "Proxy (or server) to ask, as HOST:PORT. Repeat it to give several addresses of the same server: a download then runs one subflow per address (see --multipath)",
        DefaultValueFactory = _ => [new PeerAddress("127.0.0.1", PeerAddress.DefaultPort)],
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
        CustomParser = result =>
        {
            var addresses = new List<PeerAddress>();
            foreach (var token in result.Tokens)
            {
                if (!PeerAddress.TryParse(token.Value, out var address))
                {
                    result.AddError($"'{token.Value}' is not HOST:PORT");
                    return [];
                }
                addresses.Add(address);
            }
            if (addresses.Count > MultipathFetcher.MaxSubflows)
            {
                result.AddError($"at most {MultipathFetcher.MaxSubflows} --proxy addresses");
            }
            return [.. addresses];
        },
    };

    private static readonly Option<MultipathMode?> Multipath = new("--multipath")
    {
        Description = "With several --proxy addresses: 'adaptive' (default) splits the file across them and drops to one path when the others only add congestion; 'all' always uses every one; 'off' uses the first only (default: adaptive)",
        CustomParser = result =>
        {
            var text = result.Tokens.Single().Value;
            MultipathMode? mode = text switch
            {
                "off" => MultipathMode.Off,
                "adaptive" => MultipathMode.Adaptive,
                "all" => MultipathMode.All,
                _ => null,
            };
            if (mode is null)
            {
                result.AddError($"--multipath takes off, adaptive or all, not '{text}'");
            }
            return mode;
        },
    };

    private static readonly Option<bool> Mptcp = new("--mptcp") { Description = "Connect with a Linux MPTCP socket" };

    private static readonly Option<Serilog.Events.LogEventLevel> LogLevel = CommandLine.LogLevelOption();

    private static readonly FileClientOptions Defaults = new();

    private static readonly Option<Duration> ConnectTimeout = CommandLine.DurationOption("--connect-timeout",
        "Give up connecting after this long", Defaults.ConnectTimeout);

    private static readonly Option<Duration> ResponseTimeout = CommandLine.DurationOption("--response-timeout",
        "Give up when an answer does not start within this long after asking", Defaults.ResponseTimeout);

    private static readonly Option<Duration> IdleTimeout = CommandLine.DurationOption("--idle-timeout",
        "Give up when a transfer receives no byte for this long", Defaults.IdleTimeout);

    private static readonly Option<Duration> MaxTime = CommandLine.DurationOption("--max-time",
        "Give up when the whole operation takes longer than this (0s: no limit)", TimeSpan.Zero);

    private static readonly Option<bool> Tls = SecurityOptions.Tls();

    private static readonly Option<FileInfo?> TlsCa = SecurityOptions.TlsCa();

    private static readonly Option<FileInfo?> TokenFile = SecurityOptions.TokenFile(description: "File holding the server's shared token (its first line)");

    /// <summary>Options every command that talks to a peer takes.</summary>
    private static readonly Option[] PeerOptions = [Proxy, Mptcp, Tls, TlsCa, TokenFile, ConnectTimeout, ResponseTimeout, IdleTimeout, MaxTime, LogLevel];

    public static RootCommand Build()
    {
        var root = new RootCommand(
            "FileProxy client: fetches a file through a FileProxy proxy (or straight from a server), checks its BLAKE3 and writes it to disk.\n"
            + "Fetch a file with 'NAME [options]' (the options below) or 'get NAME [options]'.");
        var get = GetCommand("get", "Fetch a file (the default command; use 'get' for a file named like a command)");
        foreach (var option in get.Options)
        {
            root.Options.Add(option);
        }
        // 'client NAME ...' is 'client get NAME ...'. The root's own NAME is hidden so that the subcommands' usage
        // lines do not show it ('client stat <NAME>', not 'client <NAME> stat <NAME>').
        root.Arguments.Add(new Argument<string>("NAME") { Description = "File to fetch", Hidden = true });
        root.SetAction((parse, cancellationToken) =>
            root.Parse([get.Name, .. parse.Tokens.Select(token => token.Value)]).InvokeAsync(parse.InvocationConfiguration, cancellationToken));
        root.Subcommands.Add(get);
        root.Subcommands.Add(StatCommand());
        root.Subcommands.Add(StatsCommand());
        root.Subcommands.Add(PurgeCommand());
        return root;
    }

    private static Command GetCommand(string name, string description)
    {
        var fileName = new Argument<string>("NAME") { Description = "File to fetch: a relative path, '/' between directories" };
        var output = new Option<string?>("--output", "-o")
        {
            Description = "Where to write the file ('-' for standard output; a directory takes the name's last segment) (default: last segment of NAME, in the current directory; a range: NAME.range-OFFSET-LENGTH)",
            HelpName = "path",
        };
        var offset = CommandLine.SizeOption("--offset", "Fetch from this byte on (a range: the digest is checked only for whole files)", 0);
        var length = CommandLine.SizeOption("--length", "Fetch at most this many bytes (default: to the end)");
        var command = new Command(name, description) { fileName, output, offset, length, Multipath };
        AddPeerOptions(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var rawName = parse.GetValue(fileName)!;
            if (!SafeName.TryCreate(rawName, out var safeName, out var error))
            {
                await Console.Error.WriteLineAsync($"error: refusing name '{rawName}': {error}");
                return ExitCodes.Refused;
            }
            var target = parse.GetValue(output);
            var toStdout = target == "-";
            if (!toStdout)
            {
                // A range never takes the whole file's name: it would replace a complete copy with a part.
                var isRange = parse.GetResult(offset) is { Implicit: false } || parse.GetResult(length) is not null;
                var defaultName = isRange
                    ? string.Create(CultureInfo.InvariantCulture,
                        $"{safeName.FileName}.range-{parse.GetValue(offset)}-{(parse.GetResult(length) is null ? "end" : parse.GetValue(length))}")
                    : safeName.FileName;
                target = target is null ? defaultName
                    : Directory.Exists(target) ? Path.Join(target, defaultName) : target;
            }
            var rangeLength = parse.GetResult(length) is null ? ProtocolLimits.ToEnd : (ulong)parse.GetValue(length);
            var peers = parse.GetValue(Proxy)!;
            var mode = parse.GetValue(Multipath) ?? MultipathMode.Adaptive;
            if (peers.Length > 1 && mode != MultipathMode.Off && !toStdout && parse.GetResult(offset) is null or { Implicit: true } && parse.GetResult(length) is null)
            {
                return await WithOptionsAsync(parse, async (connection, limited) =>
                {
                    var options = new MultipathOptions { Mode = mode, Connection = connection };
                    var (result, transfer) = await MultipathDownload.ToFileAsync(peers, options, safeName, target!, limited);
                    Report(safeName, target!, toStdout, result, null, transfer);
                    return result.ExitCode;
                }, cancellationToken);
            }
            return await WithClientAsync(parse, async (client, limited) =>
            {
                var result = toStdout
                    ? await Download.ToStandardOutputAsync(client, safeName, (ulong)parse.GetValue(offset), rangeLength, limited)
                    : await Download.ToPathAsync(client, safeName, target!, (ulong)parse.GetValue(offset), rangeLength, limited);
                Report(safeName, target!, toStdout, result, client.Mptcp.Describe(), null);
                return result.ExitCode;
            }, cancellationToken);
        });
        return command;
    }

    private static Command StatCommand()
    {
        var fileName = new Argument<string>("NAME") { Description = "File to describe" };
        var command = new Command("stat", "Print a file's size, version tag and BLAKE3 without fetching it") { fileName };
        AddPeerOptions(command);
        command.SetAction((parse, cancellationToken) => WithClientAsync(parse, async (client, limited) =>
        {
            var head = await client.StatAsync(parse.GetValue(fileName)!, limited);
            if (!head.IsOk)
            {
                await Console.Error.WriteLineAsync($"error: {head.Status}: {EscapingEnricher.Escape(head.Message)}");
                return ExitCodes.For(head.Status);
            }
            Console.WriteLine($"name:    {parse.GetValue(fileName)}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"size:    {head.File!.Size} ({Units.FormatBytes(head.File.Size)})"));
            Console.WriteLine($"version: {head.File.Version}");
            Console.WriteLine($"blake3:  {head.File.Digest}");
            Console.WriteLine($"source:  {Describe(head.Source)}");
            if (client.Mptcp.Describe() is { } transport)
            {
                Console.WriteLine($"transport: {transport}");
            }
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command StatsCommand()
    {
        var json = new Option<bool>("--json") { Description = "Print the counters as one JSON object" };
        var command = new Command("stats", "Print the proxy's (or server's) counters") { json };
        AddPeerOptions(command);
        command.SetAction((parse, cancellationToken) => WithClientAsync(parse, async (client, limited) =>
        {
            var head = await client.StatsAsync(limited);
            if (!head.IsOk)
            {
                await Console.Error.WriteLineAsync($"error: {head.Status}: {EscapingEnricher.Escape(head.Message)}");
                return ExitCodes.For(head.Status);
            }
            if (parse.GetValue(json))
            {
                using var stdout = Console.OpenStandardOutput();
                await using var writer = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true });
                writer.WriteStartObject();
                writer.WriteString("role", head.Message);
                foreach (var (key, value) in head.Counters)
                {
                    writer.WriteNumber(key, value);
                }
                writer.WriteEndObject();
                await writer.FlushAsync(limited);
                await stdout.WriteAsync("\n"u8.ToArray(), limited);
            }
            else
            {
                Console.WriteLine($"{"role",-28} {EscapingEnricher.Escape(head.Message)}");
                foreach (var (key, value) in head.Counters)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{key,-28} {value}"));
                }
            }
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command PurgeCommand()
    {
        var fileName = new Argument<string>("NAME") { Description = "Cached file to remove" };
        var command = new Command("purge", "Remove a file from the proxy's cache (the proxy must run with --allow-purge)") { fileName };
        AddPeerOptions(command);
        command.SetAction((parse, cancellationToken) => WithClientAsync(parse, async (client, limited) =>
        {
            var head = await client.PurgeAsync(parse.GetValue(fileName)!, limited);
            if (!head.IsOk)
            {
                await Console.Error.WriteLineAsync($"error: {head.Status}: {EscapingEnricher.Escape(head.Message)}");
                return ExitCodes.For(head.Status);
            }
            Console.WriteLine(EscapingEnricher.Escape(head.Message));
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static void AddPeerOptions(Command command)
    {
        foreach (var option in PeerOptions)
        {
            command.Options.Add(option);
        }
    }

    /// <summary>Runs <paramref name="action"/> on one connection to the first --proxy address.</summary>
    private static Task<int> WithClientAsync(ParseResult parse, Func<FileClient, CancellationToken, Task<int>> action,
        CancellationToken cancellationToken) =>
        WithOptionsAsync(parse, async (options, limited) =>
        {
            var peer = parse.GetValue(Proxy)![0];
            await using var client = await FileClient.ConnectAsync(peer.Host, peer.Port, options, limited);
            return await action(client, limited);
        }, cancellationToken);

    /// <summary>Runs <paramref name="action"/> with the connection options of the command line (TLS, token, MPTCP,
    /// timeouts) and a token bounded by --max-time; turns failures into exit codes and one line each.</summary>
    private static async Task<int> WithOptionsAsync(ParseResult parse, Func<FileClientOptions, CancellationToken, Task<int>> action,
        CancellationToken cancellationToken)
    {
        CommandLine.ConfigureLogging(parse.GetValue(LogLevel));
        FileClientOptions options;
        try
        {
            options = new FileClientOptions
            {
                Tls = parse.GetValue(Tls) || parse.GetValue(TlsCa) is not null,
                TlsTrust = SecurityOptions.LoadTrust(parse.GetValue(TlsCa)),
                Token = SecurityOptions.ReadToken(parse.GetValue(TokenFile)),
                Mptcp = parse.GetValue(Mptcp),
                ConnectTimeout = parse.GetValue(ConnectTimeout),
                ResponseTimeout = parse.GetValue(ResponseTimeout),
                IdleTimeout = parse.GetValue(IdleTimeout),
            };
        }
        catch (IOException e)
        {
            await Console.Error.WriteLineAsync($"error: {EscapingEnricher.Escape(e.Message)}");
            await Log.CloseAndFlushAsync();
            return ExitCodes.UsageError;
        }
        TimeSpan maxTime = parse.GetValue(MaxTime);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (maxTime > TimeSpan.Zero)
        {
            limit.CancelAfter(maxTime);
        }
        try
        {
            return await action(options, limit.Token);
        }
        catch (UpstreamException e)
        {
            await Console.Error.WriteLineAsync($"error: {EscapingEnricher.Escape(e.Message)}");
            return e.Status is { } status ? ExitCodes.For(status) : ExitCodes.NetworkError;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("interrupted");
            return 130;
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"error: gave up after --max-time {Units.FormatDuration(maxTime)}");
            return ExitCodes.NetworkError;
        }
        catch (Exception e)
        {
            Log.Error(e, "Unexpected failure");
            await Console.Error.WriteLineAsync($"error: {EscapingEnricher.Escape(e.Message)}");
            return ExitCodes.InternalError;
        }
        finally
        {
            await Log.CloseAndFlushAsync();
        }
    }

    private static void Report(SafeName name, string target, bool toStdout, DownloadResult result, string? transport, MultipathResult? transfer)
    {
        if (result.ExitCode != ExitCodes.Success)
        {
            Console.Error.WriteLine($"error: {name}: {EscapingEnricher.Escape(result.Message)}");
            return;
        }
        var head = result.Head!;
        var seconds = Math.Max(result.Elapsed.TotalSeconds, 1e-6);
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{name}: {result.Bytes} bytes ({Units.FormatBytes(result.Bytes)}) in {Units.FormatDuration(result.Elapsed)}, {Units.FormatBytes(result.Bytes / seconds)}/s, {Describe(head.Source)}{(transport is null ? "" : ", " + transport)}, blake3 {(result.DigestChecked ? "verified " + head.File!.Digest.ToString()[..16] + "…" : "not checked (partial range)")}{Subflows(transfer)}{(toStdout ? "" : " -> " + target)}");
        // Beside the bytes themselves on standard output, or on a device or FIFO that may well be standard output.
        (toStdout || result.WroteStraight ? Console.Error : Console.Out).WriteLine(line);
    }

    /// <summary>For a multipath download: how many subflows carried data, and each one's share.</summary>
    private static string Subflows(MultipathResult? transfer) => transfer is null ? ""
        : string.Create(CultureInfo.InvariantCulture,
            $", {transfer.SubflowsCarrying} of {transfer.Subflows.Count} subflows carried data ({string.Join(", ", transfer.Subflows.Select(s => $"{s.Address} {Units.FormatBytes(s.Bytes)}{(s.Failure is null ? "" : " failed")}"))})");

    private static string Describe(ResponseSource source) => source switch
    {
        ResponseSource.Origin => "from origin",
        ResponseSource.CacheHit => "cache hit",
        ResponseSource.CacheMiss => "cache miss",
        ResponseSource.CacheCoalesced => "cache miss (joined a fill in progress)",
        ResponseSource.PassThrough => "passed through uncached",
        ResponseSource.StaleHit => "stale cache hit (origin unreachable)",
        _ => source.ToString(),
    };
}
