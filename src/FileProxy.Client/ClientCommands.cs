using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Hosting;
using FileProxy.Protocol.Tier;
using FileProxy.Protocol.Wire;
using Serilog;

namespace FileProxy.Client;

/// <summary>The client's command line: fetch a file (the default), stat, stats and purge.</summary>
internal static partial class ClientCommands
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

    private static readonly Option<TierPeer[]?> TierOption = new("--tier")
    {
        HelpName = "host:port,...",
        Description = "The proxies of a tier, comma-separated, as the proxies' --peer list: each name goes to the proxy that owns it (rendezvous hashing), or to the next one when that one does not answer; stats asks every one (default: none, ask --proxy)",
        CustomParser = result =>
        {
            var text = result.Tokens.Single().Value;
            if (!TierPeer.TryParseList(text, out var peers, out var bad))
            {
                result.AddError($"--tier: '{bad}' is not HOST:PORT");
                return null;
            }
            return peers;
        },
    };

    private static readonly Option<bool> Mptcp = new("--mptcp") { Description = "Connect with a Linux MPTCP socket" };

    private static readonly Option<bool> Quiet = new("--quiet", "-q") { Description = "Print errors only: no progress bars, result lines or summary" };

    private static readonly Option<bool> Json = new("--json") { Description = "Print one JSON object per file on standard output (name, output, bytes, seconds, source, digest, verified, attempts, resumed, exit_code, error) instead of result lines; no progress bars" };

    /// <summary>Files fetched at once by default: a few connections keep a link busy between small files without
    /// crowding a proxy (whose per-address limit is far higher).</summary>
    private const int DefaultParallel = 4;

    private const int MaxParallel = 64;
    // Resume and retries of a single-path download (Download, PartialFile, RetryPolicy).
    private static readonly Option<bool> Resume = new("--resume")
    {
        Description = "Continue the partial file an earlier --resume left (.NAME.partial), or a shorter output, with a ranged GET if the version still matches; keep the partial file if this run fails too",
    };

    private static readonly Option<int> Retries = new("--retries")
    {
        Description = "Try a passing failure (no connection, connection cut, timeout, Busy, UpstreamUnavailable) this many more times, after 0.25 s, 0.5 s, 1 s, ... (at most 4 s, with jitter), from the first byte not yet received",
        HelpName = "n",
        DefaultValueFactory = _ => RetryPolicy.DefaultRetries,
        Validators =
        {
            result =>
            {
                if (result.GetValueOrDefault<int>() < 0)
                {
                    result.AddError("--retries cannot be negative");
                }
            },
        },
    };

    private static DownloadOptions DownloadOptionsOf(ParseResult parse, ClientOutput report, IDownloadProgress? progress) => new()
    {
        Resume = parse.GetValue(Resume),
        Retry = new RetryPolicy { Retries = parse.GetValue(Retries) },
        // One line per retry and start-over, on standard error (above the bars; none with --quiet).
        Notice = line => report.Notice(EscapingEnricher.Escape(line)),
        Progress = progress,
    };

    /// <summary>Why --resume cannot apply to this command line, or null.</summary>
    private static string? ResumeRefusal(ParseResult parse, bool toStdout, bool isRange) =>
        !parse.GetValue(Resume) ? null
        : toStdout ? "--resume needs an output file, not -o -"
        : isRange ? "--resume fetches whole files: it does not combine with --offset or --length"
        : null;

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
    private static readonly Option[] PeerOptions = [Proxy, TierOption, Mptcp, Tls, TlsCa, TokenFile, ConnectTimeout, ResponseTimeout, IdleTimeout, MaxTime, LogLevel];

    public static RootCommand Build()
    {
        var root = new RootCommand(
            "FileProxy client: fetches files through a FileProxy proxy (or straight from a server), checks their BLAKE3 and writes them to disk.\n"
            + "Fetch files with 'NAME... [options]' (the options below) or 'get NAME... [options]'.");
        var get = GetCommand("get", "Fetch files (the default command; use 'get' for a file named like a command)");
        foreach (var option in get.Options)
        {
            root.Options.Add(option);
        }
        // 'client NAME ...' is 'client get NAME ...'. The root's own NAME is hidden so that the subcommands' usage
        // lines do not show it ('client stat <NAME>', not 'client <NAME> stat <NAME>').
        root.Arguments.Add(new Argument<string[]>("NAME") { Description = "Files to fetch", Hidden = true, Arity = ArgumentArity.ZeroOrMore });
        root.SetAction((parse, cancellationToken) =>
            root.Parse([get.Name, .. parse.Tokens.Select(token => token.Value)]).InvokeAsync(parse.InvocationConfiguration, cancellationToken));
        root.Subcommands.Add(get);
        root.Subcommands.Add(StatCommand());
        root.Subcommands.Add(StatsCommand());
        root.Subcommands.Add(PurgeCommand());
        root.Subcommands.Add(ListCommand());
        return root;
    }

    private static Command GetCommand(string name, string description)
    {
        var fileNames = new Argument<string[]>("NAME")
        {
            Description = "Files to fetch: relative paths, '/' between directories; several names (or -i) fetch them all",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var output = new Option<string?>("--output", "-o")
        {
            Description = "Where to write the file ('-' for standard output; a directory takes the name's last segment); with several names, the directory to write them under, created if missing (default: last segment of NAME, in the current directory; a range: NAME.range-OFFSET-LENGTH; several names: the current directory)",
            HelpName = "path",
        };
        var offset = CommandLine.SizeOption("--offset", "Fetch from this byte on (a range: the digest is checked only for whole files)", 0);
        var length = CommandLine.SizeOption("--length", "Fetch at most this many bytes (default: to the end)");
        var input = new Option<string?>("--input", "-i")
        {
            Description = "Fetch the names listed in this file too, one a line ('-': standard input) (default: none)",
            HelpName = "file",
        };
        var parallel = new Option<int>("--parallel")
        {
            Description = "With several names: how many files are fetched at once, each over a connection kept for the next",
            DefaultValueFactory = _ => DefaultParallel,
            HelpName = "n",
        };
        parallel.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > MaxParallel)
            {
                result.AddError($"--parallel takes 1 to {MaxParallel}");
            }
        });
        var flat = new Option<bool>("--flat") { Description = "With several names: write each by its last segment only, not under its directories (two names with the same last segment are an error)" };
        var recursive = new Option<bool>("--recursive", "-r")
        {
            Description = "NAME is a directory: fetch every file under it (see 'list'), each to its whole name under the current directory or -o DIR",
        };
        var command = new Command(name, description) { fileNames, output, offset, length, input, parallel, flat, Quiet, Json, Multipath, recursive, Resume, Retries };
        AddPeerOptions(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var given = parse.GetValue(fileNames) ?? [];
            var mode = parse.GetValue(Json) ? OutputMode.Json : parse.GetValue(Quiet) ? OutputMode.Quiet : OutputMode.Normal;
            if (parse.GetValue(recursive))
            {
                if (given.Length != 1 || parse.GetValue(input) is not null)
                {
                    await Console.Error.WriteLineAsync("error: -r takes one directory NAME (and no -i list)");
                    return ExitCodes.UsageError;
                }
                if (parse.GetResult(offset) is { Implicit: false } || parse.GetResult(length) is not null || parse.GetValue(output) == "-")
                {
                    await Console.Error.WriteLineAsync("error: -r fetches whole files into a directory: --offset, --length and -o - do not go with it");
                    return ExitCodes.UsageError;
                }
                return await FetchTreeAsync(parse, given[0], parse.GetValue(output), parse.GetValue(parallel), parse.GetValue(flat), mode,
                    cancellationToken);
            }
            if (parse.GetValue(input) is null && given.Length == 1)
            {
                return await GetOneAsync(parse, given[0], output, offset, length, mode, cancellationToken);
            }
            if (parse.GetValue(input) is null && given.Length == 0)
            {
                await Console.Error.WriteLineAsync($"error: nothing to fetch: give a NAME, or -i FILE with one name a line. Try '{CommandLine.InvokedName()} --help' for usage.");
                return ExitCodes.UsageError;
            }
            return await GetManyAsync(parse, given, output, offset, length, input, parallel, flat, mode, cancellationToken);
        });
        return command;
    }

    /// <summary>One name: the file, device, FIFO or standard output that -o names (or the name's last segment), a
    /// range, multipath.</summary>
    private static async Task<int> GetOneAsync(ParseResult parse, string rawName, Option<string?> output, Option<long> offset,
        Option<long> length, OutputMode mode, CancellationToken cancellationToken)
    {
        if (!SafeName.TryCreate(rawName, out var safeName, out var error))
        {
            await using var refusal = ClientOutput.Start(mode == OutputMode.Json ? mode : OutputMode.Quiet);
            refusal.Refused(rawName, $"refusing name '{rawName}': {error}");
            return ExitCodes.Refused;
        }
        var target = parse.GetValue(output);
        var toStdout = target == "-";
        var isRange = parse.GetResult(offset) is { Implicit: false } || parse.GetResult(length) is not null;
        if (ResumeRefusal(parse, toStdout, isRange) is { } notResumable)
        {
            await Console.Error.WriteLineAsync($"error: {notResumable}");
            return ExitCodes.UsageError;
        }
        if (!toStdout)
        {
            // A range never takes the whole file's name: it would replace a complete copy with a part.
            var defaultName = isRange
                ? string.Create(CultureInfo.InvariantCulture,
                    $"{safeName.FileName}.range-{parse.GetValue(offset)}-{(parse.GetResult(length) is null ? "end" : parse.GetValue(length))}")
                : safeName.FileName;
            target = target is null ? defaultName
                : Directory.Exists(target) ? Path.Join(target, defaultName) : target;
        }
        var rangeLength = parse.GetResult(length) is null ? ProtocolLimits.ToEnd : (ulong)parse.GetValue(length);
        var peers = parse.GetValue(Proxy)!;
        var multipath = parse.GetValue(Multipath) ?? MultipathMode.Adaptive;
        return await WithOptionsAsync(parse, (options, limited) =>
            peers.Length > 1 && parse.GetValue(TierOption) is not { Length: > 0 } && multipath != MultipathMode.Off && !toStdout
            && !isRange && !parse.GetValue(Resume) && MultipathDownload.CanWrite(target!)
                ? MultipathAsync(options, limited)
                : OnePathAsync(options, limited), cancellationToken);

        async Task<int> MultipathAsync(FileClientOptions connection, CancellationToken limited)
        {
            await using var report = ClientOutput.Start(mode);
            var progress = report.Begin(rawName);
            try
            {
                var options = new MultipathOptions { Mode = multipath, Connection = connection };
                var (result, transfer) = await MultipathDownload.ToFileAsync(peers, options, safeName, target!, progress,
                    DownloadOptionsOf(parse, report, progress), limited);
                report.Finished(rawName, target, toStdout, result, progress, null, transfer);
                return result.ExitCode;
            }
            catch (UpstreamException e) when (mode == OutputMode.Json)
            {
                return report.Failed(rawName, target, toStdout, e, progress);
            }
        }

        async Task<int> OnePathAsync(FileClientOptions options, CancellationToken limited)
        {
            if (peers.Length == 1)
            {
                CommandLine.UseOneSocketEngine();
            }
            // The bytes themselves on the terminal: bars would be drawn into them (curl draws none either).
            await using var report = ClientOutput.Start(mode, bars: !toStdout || Console.IsOutputRedirected);
            var progress = report.Begin(rawName);
            try
            {
                var tier = parse.GetValue(TierOption);
                Task<FileClient> Connect(CancellationToken token) => tier is { Length: > 0 }
                    ? ConnectToOwnerAsync(tier, safeName.Value, options, token)
                    : FileClient.ConnectAsync(peers[0].Host, peers[0].Port, options, token);
                var tries = DownloadOptionsOf(parse, report, progress);
                var result = toStdout
                    ? await Download.ToStandardOutputAsync(Connect, safeName, (ulong)parse.GetValue(offset), rangeLength, tries, limited)
                    : await Download.ToPathAsync(Connect, safeName, target!, (ulong)parse.GetValue(offset), rangeLength, tries, limited);
                report.Finished(rawName, target, toStdout, result, progress, result.Transport);
                return result.ExitCode;
            }
            catch (UpstreamException e) when (mode == OutputMode.Json)
            {
                return report.Failed(rawName, target, toStdout, e, progress);
            }
        }
    }

    /// <summary>Several names (or -i): each under the -o directory by its relative path (or its last segment with
    /// --flat), --parallel at a time over kept connections, then one summary line (<see cref="Batch"/>).</summary>
    private static async Task<int> GetManyAsync(ParseResult parse, string[] given, Option<string?> output, Option<long> offset,
        Option<long> length, Option<string?> input, Option<int> parallel, Option<bool> flat, OutputMode mode,
        CancellationToken cancellationToken)
    {
        if (parse.GetResult(offset) is { Implicit: false } || parse.GetResult(length) is not null)
        {
            await Console.Error.WriteLineAsync("error: --offset and --length fetch a range of one file; give one NAME");
            return ExitCodes.UsageError;
        }
        var directory = parse.GetValue(output) ?? "";
        if (directory == "-")
        {
            await Console.Error.WriteLineAsync("error: several files cannot go to standard output; -o takes a directory here");
            return ExitCodes.UsageError;
        }
        if (File.Exists(directory))
        {
            await Console.Error.WriteLineAsync($"error: -o {directory} is a file; with several names -o takes a directory");
            return ExitCodes.UsageError;
        }
        var names = new List<string>(given);
        if (parse.GetValue(input) is { } list)
        {
            try
            {
                names.AddRange(await Batch.ReadNamesAsync(list, cancellationToken));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"error: cannot read the name list {(list == "-" ? "on standard input" : list)}: {Reason(e)}");
                return ExitCodes.UsageError;
            }
        }
        return await RunBatchAsync(parse, names, directory, parse.GetValue(flat), parse.GetValue(parallel), mode, cancellationToken);
    }

    /// <summary>Fetches <paramref name="names"/> under <paramref name="directory"/> (each by its relative path, or its
    /// last segment with <paramref name="flat"/>), <paramref name="workers"/> at a time over kept connections, then
    /// one summary line. The one place where many files are fetched: several names, -i and -r all end here.</summary>
    private static async Task<int> RunBatchAsync(ParseResult parse, IReadOnlyList<string> names, string directory, bool flat,
        int workers, OutputMode mode, CancellationToken cancellationToken)
    {
        var (items, conflict) = Batch.Plan(names, directory, flat);
        if (conflict is not null)
        {
            await Console.Error.WriteLineAsync($"error: {conflict}");
            return ExitCodes.UsageError;
        }
        var peers = parse.GetValue(Proxy)!;
        var multipath = parse.GetValue(Multipath) ?? MultipathMode.Adaptive;
        return await WithOptionsAsync(parse, async (options, limited) =>
        {
            await using var report = ClientOutput.Start(mode);
            // As for one name: --resume and a tier use one path (the first --proxy, or the owner), and so do
            // outputs multipath cannot fill (checked for each name).
            var severalPaths = peers.Length > 1 && multipath != MultipathMode.Off && parse.GetValue(TierOption) is not { Length: > 0 }
                && !parse.GetValue(Resume);
            if (severalPaths)
            {
                var pathOptions = new MultipathOptions { Mode = multipath, Connection = options };
                await using var onePath = new FileClientPool(peers[0].Host, peers[0].Port, options, maxIdle: workers);
                return await Batch.RunAsync(items, workers, async (item, progress, token) =>
                    MultipathDownload.CanWrite(item.Target!)
                        ? (await MultipathDownload.ToFileAsync(peers, pathOptions, item.Name!, item.Target!, progress,
                            DownloadOptionsOf(parse, report, progress), token)).Result
                        : await Download.ToPathAsync(onePath, item.Name!, item.Target!, DownloadOptionsOf(parse, report, progress), token),
                    report, limited);
            }
            if (parse.GetValue(TierOption) is { Length: > 0 } tier)
            {
                // Each name from the proxy of the tier that owns it, over a connection of its own.
                return await Batch.RunAsync(items, workers, (item, progress, token) =>
                    Download.ToPathAsync(connectToken => ConnectToOwnerAsync(tier, item.Name!.Value, options, connectToken), item.Name!,
                        item.Target!, 0, ProtocolLimits.ToEnd, DownloadOptionsOf(parse, report, progress), token),
                    report, limited);
            }
            await using var pool = new FileClientPool(peers[0].Host, peers[0].Port, options, maxIdle: workers);
            return await Batch.RunAsync(items, workers, (item, progress, token) =>
                Download.ToPathAsync(pool, item.Name!, item.Target!, DownloadOptionsOf(parse, report, progress), token),
                report, limited);
        }, cancellationToken);
    }

    /// <summary>Why a file cannot be read, in a user's words.</summary>
    private static string Reason(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => "no such file",
        UnauthorizedAccessException => "permission denied",
        _ => e.Message,
    };

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
            Console.WriteLine($"source:  {ClientOutput.Describe(head.Source)}");
            if (client.Mptcp.Describe() is { } transport)
            {
                Console.WriteLine($"transport: {transport}");
            }
            return ExitCodes.Success;
        }, cancellationToken, parse.GetValue(fileName)));
        return command;
    }

    private static Command StatsCommand()
    {
        var json = new Option<bool>("--json") { Description = "Print the counters as one JSON object" };
        var command = new Command("stats", "Print the proxy's (or server's) counters") { json };
        AddPeerOptions(command);
        command.SetAction((parse, cancellationToken) => parse.GetValue(TierOption) is { Length: > 0 } tier
            ? WithOptionsAsync(parse, (options, limited) => TierStatsAsync(tier, options, parse.GetValue(json), limited), cancellationToken)
            : WithClientAsync(parse, async (client, limited) =>
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
                PrintCounters(head);
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
        }, cancellationToken, parse.GetValue(fileName)));
        return command;
    }

    /// <summary>Prints a STATS answer: one counter a line, the tier's per-peer counters as a table at the end.</summary>
    private static void PrintCounters(ResponseHead head)
    {
        Console.WriteLine($"{"role",-28} {EscapingEnricher.Escape(head.Message)}");
        foreach (var (key, value) in head.Counters.Where(pair => !pair.Key.StartsWith("peer:", StringComparison.Ordinal)))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{key,-28} {value}"));
        }
        var peers = TierView.Parse(head.Counters);
        if (peers.Count > 0)
        {
            Console.WriteLine("tier (this proxy's view):");
            foreach (var peer in peers)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {EscapingEnricher.Escape(peer.Id),-26} {peer.StateName,-5} forwarded {peer.Forwarded}{(peer.DownMs > 0 ? $", tried again in {Units.FormatDuration(TimeSpan.FromMilliseconds(peer.DownMs))}" : "")}"));
            }
        }
    }

    /// <summary>stats --tier: every peer's counters, one after the other (one JSON object keyed by peer).</summary>
    private static async Task<int> TierStatsAsync(TierPeer[] tier, FileClientOptions options, bool json, CancellationToken cancellationToken)
    {
        var exitCode = ExitCodes.Success;
        using var stdout = Console.OpenStandardOutput();
        await using var writer = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true });
        if (json)
        {
            writer.WriteStartObject();
        }
        foreach (var peer in tier)
        {
            ResponseHead head;
            try
            {
                await using var client = await FileClient.ConnectAsync(peer.Host, peer.Port, options, cancellationToken);
                head = await client.StatsAsync(cancellationToken);
            }
            catch (UpstreamException e)
            {
                await Console.Error.WriteLineAsync($"error: {peer.Id}: {EscapingEnricher.Escape(e.Message)}");
                exitCode = ExitCodes.NetworkError;
                continue;
            }
            if (json)
            {
                writer.WriteStartObject(peer.Id);
                writer.WriteString("role", head.Message);
                foreach (var (key, value) in head.Counters)
                {
                    writer.WriteNumber(key, value);
                }
                writer.WriteEndObject();
            }
            else
            {
                Console.WriteLine($"== {peer.Id}");
                PrintCounters(head);
            }
        }
        if (json)
        {
            writer.WriteEndObject();
            await writer.FlushAsync(cancellationToken);
            await stdout.WriteAsync("\n"u8.ToArray(), cancellationToken);
        }
        return exitCode;
    }

    private static void AddPeerOptions(Command command)
    {
        foreach (var option in PeerOptions)
        {
            command.Options.Add(option);
        }
    }

    /// <summary>Runs <paramref name="action"/> on one connection to the first --proxy address, or with --tier to the
    /// proxy that owns <paramref name="name"/> (the next in its ranking when that one cannot be connected to).</summary>
    private static Task<int> WithClientAsync(ParseResult parse, Func<FileClient, CancellationToken, Task<int>> action,
        CancellationToken cancellationToken, string? name = null) =>
        WithOptionsAsync(parse, async (options, limited) =>
        {
            // One connection at a time, as a one-path download: a second socket engine thread would only cost start-up.
            CommandLine.UseOneSocketEngine();
            await using var client = parse.GetValue(TierOption) is { Length: > 0 } tier && name is not null
                ? await ConnectToOwnerAsync(tier, name, options, limited)
                : await FileClient.ConnectAsync(parse.GetValue(Proxy)![0].Host, parse.GetValue(Proxy)![0].Port, options, limited);
            return await action(client, limited);
        }, cancellationToken);

    private static async Task<FileClient> ConnectToOwnerAsync(TierPeer[] tier, string name, FileClientOptions options, CancellationToken cancellationToken)
    {
        var hash = new Rendezvous(tier);
        var order = new int[hash.Peers.Count];
        hash.Rank(name, order);
        for (var i = 0; ; i++)
        {
            var peer = hash.Peers[order[i]];
            try
            {
                var client = await FileClient.ConnectAsync(peer.Host, peer.Port, options, cancellationToken);
                Log.Debug("{Name} goes to {Peer}, rank {Rank} of the tier", name, peer.Id, i + 1);
                return client;
            }
            catch (UpstreamException e) when (i + 1 < order.Length)
            {
                Log.Warning("Tier proxy {Peer} does not answer ({Reason}); asking the next one", peer.Id, e.Message);
            }
        }
    }

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
}
