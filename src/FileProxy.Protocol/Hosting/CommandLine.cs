using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Serilog;
using Serilog.Events;

namespace FileProxy.Protocol.Hosting;

/// <summary>What the three programs share on the command line: options, parsing, logging and signals.</summary>
public static class CommandLine
{
    /// <summary>Exit code for a command line that does not parse.</summary>
    public const int UsageError = 2;

    public static Option<LogEventLevel> LogLevelOption() => new("--log-level")
    {
        Description = "Least important log events to print: Verbose, Debug, Information, Warning, Error, Fatal",
        DefaultValueFactory = _ => LogEventLevel.Information,
    };

    public static Option<long> SizeOption(string name, string description, long? defaultValue = null)
    {
        var option = new Option<long>(name) { Description = description, CustomParser = ParseSize };
        if (defaultValue is { } value)
        {
            option.DefaultValueFactory = _ => value;
        }
        return option;
    }

    public static Option<TimeSpan> DurationOption(string name, string description, TimeSpan defaultValue) =>
        new(name) { Description = description, CustomParser = ParseDuration, DefaultValueFactory = _ => defaultValue };

    public static Argument<int> PortArgument(string name, string description) =>
        new(name) { Description = description, CustomParser = ParsePort };

    public static Option<int> PortOption(string name, string description, int defaultValue) =>
        new(name) { Description = description, CustomParser = ParsePort, DefaultValueFactory = _ => defaultValue };

    public static Option<IPAddress> ListenAddressOption() => new("--listen")
    {
        Description = "Address to listen on (0.0.0.0 for all IPv4, :: for all IPv4 and IPv6)",
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
        var parseResult = root.Parse(args);
        if (parseResult.Errors.Count > 0 && parseResult.Action is not System.CommandLine.Help.HelpAction)
        {
            foreach (var error in parseResult.Errors)
            {
                await Console.Error.WriteLineAsync($"error: {error.Message}");
            }
            await Console.Error.WriteLineAsync($"Try '{root.Name} --help' for usage.");
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
    public static void UseInlineSocketCompletions()
    {
        const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        if (Environment.GetEnvironmentVariable(Variable) is null)
        {
            Environment.SetEnvironmentVariable(Variable, "1");
        }
    }

    /// <summary>
    /// The life of a server program: logging, start, serve until Ctrl+C or SIGTERM, drain, stop. A server that cannot
    /// start (port in use, root missing, no permission) logs why and exits 1.
    /// </summary>
    public static async Task<int> RunServerAsync(LogEventLevel logLevel,
        Func<(FileProxy.Protocol.Server.ProtocolServer Server, IAsyncDisposable? Source)> create, CancellationToken cancellationToken)
    {
        ConfigureLogging(logLevel);
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
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            Log.Fatal("Cannot start: {Reason}", e.Message);
            return 1;
        }
        finally
        {
            await Log.CloseAndFlushAsync();
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

    public static void ConfigureLogging(LogEventLevel level) =>
        Log.Logger = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .WriteTo.Console(
                outputTemplate: "{Timestamp:HH:mm:ss.fff} [{Level:u3}] {Message:lj}{NewLine}{Exception}",
                formatProvider: CultureInfo.InvariantCulture,
                standardErrorFromLevel: LogEventLevel.Verbose)
            .CreateLogger();

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

    private static TimeSpan ParseDuration(ArgumentResult result)
    {
        var text = result.Tokens.Single().Value;
        if (Units.TryParseDuration(text, out var duration))
        {
            return duration;
        }
        result.AddError($"'{text}' is not a duration (examples: 0s, 30s, 5m, 1h)");
        return TimeSpan.Zero;
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
