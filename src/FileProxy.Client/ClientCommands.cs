using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Hosting;
using FileProxy.Protocol.Wire;
using Serilog;

namespace FileProxy.Client;

/// <summary>The client's command line: fetch a file (the default), stat, stats and purge.</summary>
internal static class ClientCommands
{
    private static readonly Option<PeerAddress[]> Proxy = new("--proxy", "-p")
    {
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
        Description = "With several --proxy addresses: 'adaptive' (default) splits the file across them and drops to one path when the others only add congestion; 'all' always uses every one; 'off' uses the first only",
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

    public static RootCommand Build()
    {
        var root = new RootCommand(
            "FileProxy client: fetches a file through a FileProxy proxy (or straight from a server), checks its BLAKE3 and writes it to disk.");
        var get = GetCommand("get", "Fetch a file (the default command; use 'get' for a file named like a command)");
        foreach (var option in get.Options)
        {
            root.Options.Add(option);
        }
        foreach (var argument in get.Arguments)
        {
            root.Arguments.Add(argument);
        }
        root.Action = get.Action;
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
            Description = "Where to write the file ('-' for standard output; a directory takes the name's last segment). Default: the name's last segment in the current directory",
        };
        var offset = CommandLine.SizeOption("--offset", "Fetch from this byte on (a range: the digest is checked only for whole files)", 0);
        var length = CommandLine.SizeOption("--length", "Fetch at most this many bytes (default: to the end)");
        var command = new Command(name, description) { fileName, output, offset, length, Proxy, Multipath, Mptcp, LogLevel };
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
                target = target is null ? safeName.FileName
                    : Directory.Exists(target) ? Path.Join(target, safeName.FileName) : target;
            }
            var rangeLength = parse.GetResult(length) is null ? ProtocolLimits.ToEnd : (ulong)parse.GetValue(length);
            var peers = parse.GetValue(Proxy)!;
            var mode = parse.GetValue(Multipath) ?? MultipathMode.Adaptive;
            if (peers.Length > 1 && mode != MultipathMode.Off && !toStdout && parse.GetResult(offset) is null or { Implicit: true } && parse.GetResult(length) is null)
            {
                return await WithLoggingAsync(parse, async () =>
                {
                    var options = new MultipathOptions { Mode = mode, Connection = new FileClientOptions { Mptcp = parse.GetValue(Mptcp) } };
                    var (result, transfer) = await MultipathDownload.ToFileAsync(peers, options, safeName, target!, cancellationToken);
                    Report(safeName, target!, toStdout, result, null, transfer);
                    return result.ExitCode;
                }, cancellationToken);
            }
            return await WithClientAsync(parse, async client =>
            {
                var result = toStdout
                    ? await Download.ToStreamAsync(client, safeName, Console.OpenStandardOutput(), (ulong)parse.GetValue(offset), rangeLength, cancellationToken)
                    : await Download.ToFileAsync(client, safeName, target!, (ulong)parse.GetValue(offset), rangeLength, cancellationToken);
                Report(safeName, target!, toStdout, result, client.Mptcp.Describe(), null);
                return result.ExitCode;
            }, cancellationToken);
        });
        return command;
    }

    private static Command StatCommand()
    {
        var fileName = new Argument<string>("NAME") { Description = "File to describe" };
        var command = new Command("stat", "Print a file's size, version tag and BLAKE3 without fetching it") { fileName, Proxy, Mptcp, LogLevel };
        command.SetAction((parse, cancellationToken) => WithClientAsync(parse, async client =>
        {
            var head = await client.StatAsync(parse.GetValue(fileName)!, cancellationToken);
            if (!head.IsOk)
            {
                await Console.Error.WriteLineAsync($"error: {head.Status}: {head.Message}");
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
        var command = new Command("stats", "Print the proxy's (or server's) counters") { json, Proxy, Mptcp, LogLevel };
        command.SetAction((parse, cancellationToken) => WithClientAsync(parse, async client =>
        {
            var head = await client.StatsAsync(cancellationToken);
            if (!head.IsOk)
            {
                await Console.Error.WriteLineAsync($"error: {head.Status}: {head.Message}");
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
                await writer.FlushAsync(cancellationToken);
                await stdout.WriteAsync("\n"u8.ToArray(), cancellationToken);
            }
            else
            {
                Console.WriteLine($"{"role",-28} {head.Message}");
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
        var command = new Command("purge", "Remove a file from the proxy's cache (the proxy must run with --allow-purge)") { fileName, Proxy, Mptcp, LogLevel };
        command.SetAction((parse, cancellationToken) => WithClientAsync(parse, async client =>
        {
            var head = await client.PurgeAsync(parse.GetValue(fileName)!, cancellationToken);
            if (!head.IsOk)
            {
                await Console.Error.WriteLineAsync($"error: {head.Status}: {head.Message}");
                return ExitCodes.For(head.Status);
            }
            Console.WriteLine(head.Message);
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Task<int> WithClientAsync(ParseResult parse, Func<FileClient, Task<int>> action, CancellationToken cancellationToken) =>
        WithLoggingAsync(parse, async () =>
        {
            var peer = parse.GetValue(Proxy)![0];
            await using var client = await FileClient.ConnectAsync(peer.Host, peer.Port,
                new FileClientOptions { Mptcp = parse.GetValue(Mptcp) }, cancellationToken);
            return await action(client);
        }, cancellationToken);

    private static async Task<int> WithLoggingAsync(ParseResult parse, Func<Task<int>> action, CancellationToken cancellationToken)
    {
        CommandLine.ConfigureLogging(parse.GetValue(LogLevel));
        try
        {
            return await action();
        }
        catch (UpstreamException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return ExitCodes.NetworkError;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("interrupted");
            return 130;
        }
        catch (Exception e)
        {
            Log.Error(e, "Unexpected failure");
            await Console.Error.WriteLineAsync($"error: {e.Message}");
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
            Console.Error.WriteLine($"error: {name}: {result.Message}");
            return;
        }
        var head = result.Head!;
        var seconds = Math.Max(result.Elapsed.TotalSeconds, 1e-6);
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{name}: {result.Bytes} bytes ({Units.FormatBytes(result.Bytes)}) in {Units.FormatDuration(result.Elapsed)}, {Units.FormatBytes(result.Bytes / seconds)}/s, {Describe(head.Source)}{(transport is null ? "" : ", " + transport)}, blake3 {(result.DigestChecked ? "verified " + head.File!.Digest.ToString()[..16] + "…" : "not checked (partial range)")}{Subflows(transfer)}{(toStdout ? "" : " -> " + target)}");
        (toStdout ? Console.Error : Console.Out).WriteLine(line);
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
