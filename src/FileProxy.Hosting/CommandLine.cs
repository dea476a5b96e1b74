using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using FileProxy.Protocol;
using FileProxy.Protocol.Wire;
using Serilog;
using Serilog.Configuration;
using Serilog.Events;
using Serilog.Sinks.SystemConsole.Themes;

namespace FileProxy.Hosting;

/// <summary>What the three programs share on the command line: options, parsing, logging and signals.</summary>
public static class CommandLine
{
    /// <summary>Exit code for a command line that does not parse.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code of a server or proxy that cannot start (port taken, root or cache directory unusable).</summary>
    public const int CannotStart = 1;

    public static Option<LogEventLevel> LogLevelOption() => new("--log-level")
    {
        Description = "Least important log events to print: verbose, debug, info, warn, error or fatal (any case; full names too)",
        HelpName = "level",
        CustomParser = result =>
        {
            var text = result.Tokens.Single().Value;
            if (TryParseLogLevel(text, out var level))
            {
                return level;
            }
            result.AddError($"'{text}' is not a log level (verbose, debug, info, warn, error, fatal)");
            return LogEventLevel.Information;
        },
        DefaultValueFactory = _ => LogEventLevel.Information,
    };

    /// <summary>Log levels as people write them: any case, full names and the usual short forms.</summary>
    public static bool TryParseLogLevel(string text, out LogEventLevel level)
    {
        LogEventLevel? parsed = text.ToLowerInvariant() switch
        {
            "verbose" or "trace" or "vrb" => LogEventLevel.Verbose,
            "debug" or "dbg" => LogEventLevel.Debug,
            "information" or "info" or "inf" => LogEventLevel.Information,
            "warning" or "warn" or "wrn" => LogEventLevel.Warning,
            "error" or "err" or "eror" => LogEventLevel.Error,
            "fatal" or "ftl" or "critical" => LogEventLevel.Fatal,
            _ => null,
        };
        level = parsed ?? LogEventLevel.Information;
        return parsed is not null;
    }

    /// <summary>An on/off option that takes a value (<c>--x false</c>) and, unlike a plain flag, shows its default in
    /// help (System.CommandLine hides the defaults of booleans).</summary>
    public static Option<bool> SwitchOption(string name, string description, bool defaultValue) => new(name)
    {
        Description = $"{description} [default: {(defaultValue ? "true" : "false")}]",
        HelpName = "true|false",
        DefaultValueFactory = _ => defaultValue,
    };

    /// <summary>A host name or IP address; anything else (a mistyped option, a size unit) is a usage error.</summary>
    public static Argument<string?> HostArgument(string name, string description) => new(name)
    {
        Description = description,
        Arity = ArgumentArity.ZeroOrOne,
        CustomParser = ParseHost,
    };

    /// <inheritdoc cref="HostArgument"/>
    public static Option<string?> HostOption(string name, string description, string defaultValue) => new(name)
    {
        Description = description,
        HelpName = "host",
        CustomParser = ParseHost,
        DefaultValueFactory = _ => defaultValue,
    };

    public static Option<long> SizeOption(string name, string description, long? defaultValue = null)
    {
        var option = new Option<long>(name) { Description = description, CustomParser = ParseSize, HelpName = "size" };
        if (defaultValue is { } value)
        {
            option.DefaultValueFactory = _ => value;
        }
        return option;
    }

    public static Option<Duration> DurationOption(string name, string description, TimeSpan defaultValue) =>
        new(name) { Description = description, CustomParser = ParseDuration, HelpName = "duration", DefaultValueFactory = _ => new Duration(defaultValue) };

    public static Argument<int> PortArgument(string name, string description) =>
        new(name) { Description = description, CustomParser = ParsePort };

    public static Option<int> PortOption(string name, string description, int defaultValue) =>
        new(name) { Description = description, CustomParser = ParsePort, HelpName = "port", DefaultValueFactory = _ => defaultValue };

    public static Option<IPAddress> ListenAddressOption() => new("--listen")
    {
        Description = "Address to listen on (0.0.0.0 for all IPv4, :: for all IPv4 and IPv6)",
        HelpName = "address",
        CustomParser = result =>
        {
            var text = result.Tokens.Single().Value;
            if (IPAddress.TryParse(text, out var address))
            {
                return address;
            }
            result.AddError($"'{text}' is not an IP address");
            return IPAddress.Any;
        },
        DefaultValueFactory = _ => IPAddress.Any,
    };

    /// <summary>Parses and runs a command: a parse error prints why and exits <see cref="UsageError"/>;
    /// Ctrl+C and SIGTERM cancel the action's token and the action decides how to wind down.</summary>
    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        UseInlineSocketCompletions();
        KeepTerminalModes();
        var parseResult = root.Parse(args);
        if (UsageErrors(parseResult) is { Count: > 0 } errors)
        {
            foreach (var error in errors)
            {
                await Console.Error.WriteLineAsync($"error: {error}");
            }
            await Console.Error.WriteLineAsync($"Try '{InvokedName()}{SubcommandPath(parseResult)} --help' for usage.");
            return UsageError;
        }
        using var shutdown = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        return await parseResult.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, shutdown.Token);

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            shutdown.Cancel();
        }
    }

    /// <summary>
    /// Runs socket continuations on the socket engine's own thread instead of hopping to the thread pool (unless the
    /// environment already says otherwise). Our request path does no long blocking work, and this one switch took
    /// 4 KiB hits from 32,764 to 62,605 requests/s in bench/run.sh --quick. Must run before the first socket.
    /// </summary>
    public static void UseInlineSocketCompletions() => SetUnlessGiven("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");

    /// <summary>
    /// One socket engine thread instead of one per core (which .NET starts when continuations run inline), unless the
    /// environment already says otherwise: for a process that moves one connection's bytes, such as a one-path
    /// download, the second thread is only start-up cost (a 4 KiB hit's CPU: 16.8 ms against 17.4, lower in 17 of 25
    /// alternating runs). Takes effect only before the process's first socket.
    /// </summary>
    public static void UseOneSocketEngine() => SetUnlessGiven("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", "1");

    /// <summary>Sets a runtime switch in this process's environment unless the user's environment already sets it.</summary>
    private static void SetUnlessGiven(string variable, string value)
    {
        if (Environment.GetEnvironmentVariable(variable) is null)
        {
            Environment.SetEnvironmentVariable(variable, value);
        }
    }

    /// <summary>
    /// The life of a server program: logging, start, serve until Ctrl+C or SIGTERM, drain, stop. A server that cannot
    /// start (port in use, root missing, no permission) logs why and exits 1 (<see cref="CannotStart"/>), or the code
    /// its <see cref="StartException"/> names.
    /// </summary>
    public static async Task<int> RunServerAsync(LogEventLevel logLevel,
        Func<(FileProxy.Protocol.Server.ProtocolServer Server, IAsyncDisposable? Source)> create, CancellationToken cancellationToken)
    {
        ConfigureLogging(logLevel, background: true);
        LogFileLimit();
        try
        {
            var (server, source) = create();
            await using (server)
            {
                server.Start();
                await Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
                await server.StopAsync();
            }
            if (source is not null)
            {
                await source.DisposeAsync();
            }
            return 0;
        }
        catch (StartException e)
        {
            Log.Fatal("Cannot start: {Reason}", e.Message);
            return e.ExitCode;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            Log.Fatal("Cannot start: {Reason}", e.Message);
            return CannotStart;
        }
        finally
        {
            // The queue's writer may be stuck on a standard error nobody reads: then its lines are lost, not the exit.
            // (Closing waits for the writer synchronously, hence a thread of the pool rather than this one.)
            await Task.WhenAny(Task.Run(async () => await Log.CloseAndFlushAsync(), CancellationToken.None),
                Task.Delay(LogFlushTimeout, CancellationToken.None));
        }
    }

    /// <summary>Raises the open file limit to its hard limit (the .NET runtime usually did so already) and logs the
    /// figure: every connection costs a descriptor, and running out makes accepts fail.</summary>
    private static void LogFileLimit()
    {
        switch (FileProxy.Protocol.Native.Posix.RaiseFileLimit())
        {
            case null:
                Log.Warning("Cannot read the open file limit (RLIMIT_NOFILE)");
                break;
            case var (before, after) when after.Soft != before.Soft:
                Log.Information("Open file limit raised from {Before} to {After} descriptors", before.Soft, after.Soft);
                break;
            case var (_, after):
                Log.Information("Open file limit: {Limit} descriptors (hard limit {Hard})", after.Soft, after.Hard);
                break;
        }
    }

    /// <summary>--header-timeout: how long a request frame may take to arrive once its first byte is in.</summary>
    public static Option<Duration> HeaderTimeoutOption() => DurationOption("--header-timeout",
        "Close a connection whose request frame is not complete this long after its first byte", ProtocolLimits.DefaultHeaderTimeout);

    /// <summary>--idle-timeout: how long a connection may wait for its next request.</summary>
    public static Option<Duration> IdleTimeoutOption() => DurationOption("--idle-timeout",
        "Close a connection that sends no request, or takes none of a response, for this long", ProtocolLimits.DefaultIdleTimeout);

    /// <summary>The --max-connections-per-address option, the same on the server and the proxy.</summary>
    public static Option<int> MaxConnectionsPerAddressOption()
    {
        var option = new Option<int>("--max-connections-per-address")
        {
            Description = "Connections one client address may hold at once; more are answered Busy (0: no limit)",
            DefaultValueFactory = _ => FileProxy.Protocol.Server.ProtocolServerOptions.DefaultMaxConnectionsPerAddress,
        };
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() < 0)
            {
                result.AddError("--max-connections-per-address cannot be negative");
            }
        });
        return option;
    }

    /// <summary>
    /// Why a command line does not parse, or an empty list. An argument that starts with '-' (before a "--") is an
    /// option, never a positional value: an unknown one is named as such, with the nearest known option as a hint,
    /// instead of becoming, say, the upstream host. Help asked for is not an error.
    /// </summary>
    public static List<string> UsageErrors(ParseResult parseResult)
    {
        if (parseResult.Action is System.CommandLine.Help.HelpAction)
        {
            return [];
        }
        var optionValues = new HashSet<Token>(ReferenceEqualityComparer.Instance);
        for (SymbolResult? result = parseResult.CommandResult; result is not null; result = result.Parent)
        {
            if (result is CommandResult command)
            {
                foreach (var option in command.Children.OfType<OptionResult>())
                {
                    optionValues.UnionWith(option.Tokens);
                }
            }
        }
        var unknown = new List<string>();
        foreach (var token in parseResult.Tokens)
        {
            if (token.Type == TokenType.DoubleDash)
            {
                break;
            }
            if (token.Type == TokenType.Argument && token.Value.Length > 1 && token.Value[0] == '-' && !optionValues.Contains(token)
                && !unknown.Contains(token.Value))
            {
                unknown.Add(token.Value);
            }
        }
        if (unknown.Count > 0)
        {
            var known = KnownOptions(parseResult.CommandResult.Command);
            return [.. unknown.Select(option => Suggest(option.Split('=')[0], known) is { } near
                ? $"unknown option '{option}' (did you mean '{near}'?)"
                : $"unknown option '{option}'")];
        }
        return [.. parseResult.Errors.Select(error => error.Message)];
    }

    /// <summary>The program as the user started it: <c>dotnet path/FileProxy.Proxy.dll</c> or the path of the
    /// executable, relative to the current directory when inside it.</summary>
    public static string InvokedName()
    {
        // Run by the dotnet host, the process is 'dotnet' and the first argument the assembly; run as its own
        // executable (apphost, 'dotnet run'), the process path is the program and the first argument still the dll.
        var args = Environment.GetCommandLineArgs();
        var assembly = args.Length > 0 && args[0].Length > 0 ? args[0] : "program";
        var process = Environment.ProcessPath;
        var byHost = process is null || Path.GetFileNameWithoutExtension(process) == "dotnet";
        var shown = Shorten(byHost ? assembly : process!, needsDotSlash: !byHost);
        return byHost ? $"dotnet {shown}" : shown;

        static string Shorten(string path, bool needsDotSlash)
        {
            if (!Path.IsPathFullyQualified(path))
            {
                return path;
            }
            var relative = Path.GetRelativePath(Environment.CurrentDirectory, path);
            return relative.StartsWith("..", StringComparison.Ordinal) ? path
                : relative.Contains('/', StringComparison.Ordinal) || !needsDotSlash ? relative : "./" + relative;
        }
    }

    private static string SubcommandPath(ParseResult parseResult)
    {
        var names = new List<string>();
        for (var command = parseResult.CommandResult; command.Parent is CommandResult parent; command = parent)
        {
            names.Insert(0, command.Command.Name);
        }
        return names.Count == 0 ? "" : " " + string.Join(' ', names);
    }

    private static List<string> KnownOptions(Command command)
    {
        var names = new List<string>();
        for (Command? current = command; current is not null; current = current.Parents.OfType<Command>().FirstOrDefault())
        {
            foreach (var option in current.Options.Where(option => current == command || option.Recursive))
            {
                names.Add(option.Name);
                names.AddRange(option.Aliases);
            }
        }
        return names;
    }

    /// <summary>The known option nearest to a mistyped one (a typo, a transposition), or null when none is close.</summary>
    public static string? Suggest(string typed, IEnumerable<string> known)
    {
        var best = (Name: (string?)null, Distance: int.MaxValue);
        foreach (var name in known.Where(name => name.StartsWith("--", StringComparison.Ordinal)))
        {
            var distance = EditDistance(typed.TrimStart('-'), name.TrimStart('-'));
            if (distance < best.Distance)
            {
                best = (name, distance);
            }
        }
        var allowed = Math.Clamp(typed.TrimStart('-').Length / 3, 1, 3);
        return best.Distance <= allowed ? best.Name : null;
    }

    /// <summary>Edits (insert, delete, substitute, swap two neighbours) that turn one string into the other.</summary>
    private static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }
        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }
        return d[a.Length, b.Length];
    }

    /// <summary>
    /// Log lines on standard error, dated, every string value escaped (<see cref="EscapingEnricher"/>), in colour
    /// (ANSI) only on a terminal. With <paramref name="background"/> (the server and the proxy) a thread of its own
    /// writes them from a queue of <see cref="LogQueueLines"/>: a standard error nobody reads (a terminal paused with
    /// Ctrl+S, a stalled pipe) then costs log lines, counted and reported once it moves again
    /// (<see cref="DroppedLogLines"/>), instead of stopping every connection at its next log line. The client writes
    /// them itself: it serves nobody else, and its last words must not wait in a queue.
    /// </summary>
    public static void ConfigureLogging(LogEventLevel level, bool background = false)
    {
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .Enrich.With<EscapingEnricher>();
        _droppedLogLines = background ? new DroppedLogLines() : null;
        Log.Logger = (background
            ? configuration.WriteTo.Async(to => WriteToConsole(to), LogQueueLines, blockWhenFull: false, monitor: _droppedLogLines)
            : WriteToConsole(configuration.WriteTo)).CreateLogger();

        static LoggerConfiguration WriteToConsole(LoggerSinkConfiguration to) => to.Console(
            outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} [{Level:u3}] {Message:lj}{NewLine}{Exception}",
            formatProvider: CultureInfo.InvariantCulture,
            standardErrorFromLevel: LogEventLevel.Verbose,
            theme: Console.IsErrorRedirected ? ConsoleTheme.None : AnsiConsoleTheme.Literate);
    }

    private static DroppedLogLines? _droppedLogLines;

    /// <summary>Log lines dropped so far by this process's background log queue (0 without one): a server's and a
    /// proxy's STATS counter <c>log_lines_dropped</c>, so that lost lines show where an operator looks even when the
    /// warning about them is lost too.</summary>
    public static long LogLinesDropped() => _droppedLogLines?.Count ?? 0;

    /// <summary>Log lines a server or proxy holds while its standard error is not read, before it drops more.</summary>
    public const int LogQueueLines = 10_000;

    /// <summary>How long a stopping server or proxy waits for its queued log lines to be written: a standard error
    /// nobody reads would otherwise keep it from ever exiting.</summary>
    public static readonly TimeSpan LogFlushTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// .NET's console, the first time it writes to a terminal, puts the terminal's keypad in application mode
    /// (terminfo's keypad_xmit, <c>ESC[?1h ESC=</c>) for Console.ReadKey, which these programs never call: the user
    /// saw those bytes before every output. Without TERM it finds no terminfo and sends nothing. Log colours do not
    /// depend on it (<see cref="ConfigureLogging"/> writes ANSI codes itself). Must run before the first console write.
    /// </summary>
    public static void KeepTerminalModes() => Environment.SetEnvironmentVariable("TERM", null);

    private static long ParseSize(ArgumentResult result)
    {
        var text = result.Tokens.Single().Value;
        if (Units.TryParseSize(text, out var bytes))
        {
            return bytes;
        }
        result.AddError($"'{text}' is not a size (examples: 4096, 512MiB, 10GiB, 1TB)");
        return 0;
    }

    private static Duration ParseDuration(ArgumentResult result)
    {
        var text = result.Tokens.Single().Value;
        if (Units.TryParseDuration(text, out var duration))
        {
            return new Duration(duration);
        }
        result.AddError($"'{text}' is not a duration (examples: 0s, 500ms, 30s, 5m, 1h)");
        return default;
    }

    private static string? ParseHost(ArgumentResult result)
    {
        var text = result.Tokens.Single().Value;
        if (HostNames.IsValid(text, out var error))
        {
            return text;
        }
        result.AddError(error);
        return null;
    }

    private static int ParsePort(ArgumentResult result)
    {
        var text = result.Tokens.Single().Value;
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 0 and <= 65535)
        {
            return port;
        }
        result.AddError($"'{text}' is not a port number (0 to 65535)");
        return 0;
    }
}
