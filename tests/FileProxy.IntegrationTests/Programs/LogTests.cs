using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using FileProxy.Hosting;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Programs;

/// <summary>What the built proxy and client print: logs that tell the truth, once, and nothing else.</summary>
public sealed partial class LogTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_response_cut_by_the_client_is_logged_as_cut_with_the_bytes_that_left()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        const int Size = 32 * 1024 * 1024; // twice what the socket buffers of both ends hold
        cluster.Root.Write("big.bin", Fetch.RandomBytes(Size, seed: 40));
        using var cache = new TempDirectory("fileproxy-cache");
        await using var proxy = ProxyProcess.Start(cluster.OriginPort, cache.Path, output);
        await proxy.WaitUntilListeningAsync(deadline.Token);
        await using (var warm = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token))
        {
            (await Fetch.GetAsync(warm, "big.bin", deadline.Token)).Body.Should().HaveCount(Size);
        }

        long received;
        await using (var reader = await StreamingGet.StartAsync(proxy.Port, "big.bin", deadline.Token))
        {
            while (reader.Received < 1024 * 1024)
            {
                await reader.ReadSomeAsync(deadline.Token);
            }
            received = reader.Received;
        }
        var line = await proxy.Program.WaitForLineAsync(text => text.Contains("GET big.bin", StringComparison.Ordinal)
            && !text.Contains("CacheMiss", StringComparison.Ordinal), deadline.Token);

        var match = CutLine().Match(line);
        match.Success.Should().BeTrue("the hit was cut by the client, and the line says so: {0}", line);
        long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture).Should().BeGreaterThanOrEqualTo(received)
            .And.BeLessThan(Size, "the bytes logged are those that left, not 0 and not the whole file");
        line.Should().NotContain(" Ok ");
    }

    [Fact]
    public async Task A_response_cut_by_the_drain_is_logged_as_cut_by_it()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        const int Size = 32 * 1024 * 1024; // twice what the socket buffers of both ends hold
        cluster.Root.Write("big.bin", Fetch.RandomBytes(Size, seed: 42));
        using var cache = new TempDirectory("fileproxy-cache");
        await using var proxy = ProxyProcess.Start(cluster.OriginPort, cache.Path, output, "--drain-timeout", "200ms");
        await proxy.WaitUntilListeningAsync(deadline.Token);
        await using (var warm = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token))
        {
            (await Fetch.GetAsync(warm, "big.bin", deadline.Token)).Body.Should().HaveCount(Size);
        }
        await using var stalled = await StreamingGet.StartAsync(proxy.Port, "big.bin", deadline.Token);
        (await stalled.ReadSomeAsync(deadline.Token)).Should().BePositive();

        proxy.Program.Terminate();
        var exitCode = await proxy.Program.WaitForExitAsync(deadline.Token);

        exitCode.Should().Be(0);
        proxy.Program.Stderr.Should().MatchRegex(@"GET big\.bin Cut after [1-9][0-9]* of 33554432 bytes in [0-9.]+ ms CacheHit: cut by the drain timeout");
    }

    [Fact]
    public async Task One_upstream_failure_is_one_warning()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var origin = new OwnedPort();
        using var cache = new TempDirectory("fileproxy-cache");
        await using var proxy = ProxyProcess.Start(origin.Port, cache.Path, output);
        await proxy.WaitUntilListeningAsync(deadline.Token);

        await using (var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token))
        {
            (await Fetch.GetAsync(client, "down.bin", deadline.Token)).Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        }
        await proxy.Program.WaitForLineAsync(text => text.Contains("GET down.bin", StringComparison.Ordinal), deadline.Token);

        proxy.Program.Stderr.Split('\n').Count(text => text.Contains("[WRN]", StringComparison.Ordinal)).Should().Be(1);
    }

    [Fact]
    public async Task A_client_asking_for_a_missing_file_is_no_warning()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        using var cache = new TempDirectory("fileproxy-cache");
        await using var proxy = ProxyProcess.Start(cluster.OriginPort, cache.Path, output);
        await proxy.WaitUntilListeningAsync(deadline.Token);

        await using (var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token))
        {
            (await Fetch.GetAsync(client, "nope.txt", deadline.Token)).Head.Status.Should().Be(StatusCode.NotFound);
        }
        var line = await proxy.Program.WaitForLineAsync(text => text.Contains("GET nope.txt", StringComparison.Ordinal), deadline.Token);

        line.Should().Contain("[INF] GET nope.txt NotFound");
        proxy.Program.Stderr.Should().NotContain("[WRN]");
    }

    [Fact]
    public async Task Log_lines_carry_the_date_and_end_without_a_space()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("a.bin", Fetch.RandomBytes(1000, seed: 41));
        using var cache = new TempDirectory("fileproxy-cache");
        await using var proxy = ProxyProcess.Start(cluster.OriginPort, cache.Path, output);
        await proxy.WaitUntilListeningAsync(deadline.Token);

        await using (var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token))
        {
            (await Fetch.GetAsync(client, "a.bin", deadline.Token)).Head.Status.Should().Be(StatusCode.Ok);
        }
        await proxy.Program.WaitForLineAsync(text => text.Contains("GET a.bin Ok", StringComparison.Ordinal), deadline.Token);

        var lines = proxy.Program.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().NotBeEmpty().And.OnlyContain(line => DatedLine().IsMatch(line), "every line starts with date and time");
        lines.Should().NotContain(line => line.EndsWith(' '));
    }

    [Fact]
    public async Task Control_characters_in_a_peers_name_cannot_forge_a_log_line()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        using var cache = new TempDirectory("fileproxy-cache");
        await using var proxy = ProxyProcess.Start(cluster.OriginPort, cache.Path, output);
        await proxy.WaitUntilListeningAsync(deadline.Token);
        const string Forged = "x\n2001-01-01 00:00:00.000 [INF] GET /etc/shadow Ok 1234 bytes\u001b[2K\rz";

        await using (var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token))
        {
            (await Fetch.GetAsync(client, Forged, deadline.Token)).Head.Status.Should().Be(StatusCode.BadRequest);
            (await Fetch.GetAsync(client, "after.bin", deadline.Token)).Head.Status.Should().Be(StatusCode.NotFound);
        }
        await proxy.Program.WaitForLineAsync(text => text.Contains("GET after.bin", StringComparison.Ordinal), deadline.Token);

        var stderr = proxy.Program.Stderr;
        stderr.Should().NotContain("\u001b").And.NotContain("\r");
        stderr.Split('\n').Should().NotContain(line => line.StartsWith("2001-01-01", StringComparison.Ordinal));
        stderr.Should().Contain("x\\n2001-01-01 00:00:00.000 [INF] GET /etc/shadow Ok 1234 bytes\\x1b[2K\\rz", "the name is logged, escaped");
    }

    [Fact]
    public async Task A_server_whose_standard_error_nobody_reads_keeps_serving_and_counts_the_lines_it_dropped()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        await using var server = await UnreadServer.StartAsync(root.Path, deadline.Token);
        // More log lines than the pipe (64 KiB: about 700 of them) and the queue hold together, one per request.
        const int Requests = CommandLine.LogQueueLines + 3_000;

        await server.AskForMissingFilesAsync(Requests, deadline.Token);

        long logged = 0, dropped = 0;
        while (dropped == 0 && await server.Stderr.ReadLineAsync(deadline.Token) is { } line)
        {
            logged += line.Contains("GET nope.bin NotFound", StringComparison.Ordinal) ? 1 : 0;
            if (DroppedLines().Match(line) is { Success: true } match)
            {
                dropped = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            }
        }
        output.WriteLine($"{logged} request lines written, {dropped} dropped");
        dropped.Should().BePositive("the queue was full while nobody read");
        (logged + dropped).Should().Be(Requests, "every request's line was either written or counted as dropped");
    }

    [Fact]
    public async Task A_server_whose_standard_error_nobody_reads_counts_the_lines_it_dropped_in_STATS()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        await using var server = await UnreadServer.StartAsync(root.Path, deadline.Token);
        (await server.LogLinesDroppedAsync(deadline.Token)).Should().Be(0, "nothing was dropped yet");

        await server.AskForMissingFilesAsync(CommandLine.LogQueueLines + 3_000, deadline.Token);

        // Read while standard error is still stuck: the warning about the lost lines cannot be written yet, STATS can.
        (await server.LogLinesDroppedAsync(deadline.Token)).Should().BePositive("the queue was full while nobody read");
    }

    [Fact]
    public async Task A_server_whose_standard_error_nobody_reads_still_stops_on_SIGTERM()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        await using var server = await UnreadServer.StartAsync(root.Path, deadline.Token);
        await server.AskForMissingFilesAsync(3_000, deadline.Token); // the pipe is full: its writer is stuck

        Process.Start("kill", ["-TERM", server.Process.Id.ToString(CultureInfo.InvariantCulture)])!.WaitForExit();
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
        stopping.CancelAfter(CommandLine.LogFlushTimeout + TimeSpan.FromSeconds(10));
        var stop = async () => await server.Process.WaitForExitAsync(stopping.Token);

        await stop.Should().NotThrowAsync("the server stops without waiting for ever on its last log lines");
        server.Process.ExitCode.Should().Be(0);
    }

    /// <summary>The server program in a child process whose standard error the test reads only up to the line that
    /// gives its port: after that, nobody reads it until the test does again.</summary>
    private sealed partial class UnreadServer(Process process, int port) : IAsyncDisposable
    {
        public Process Process { get; } = process;

        public StreamReader Stderr => Process.StandardError;

        public static async Task<UnreadServer> StartAsync(string root, CancellationToken cancellationToken)
        {
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                ArgumentList = { ChildProgram.AssemblyOf("Server"), "--root", root, "--port", "0", "--listen", "127.0.0.1" },
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            var process = Process.Start(start)!;
            while (await process.StandardError.ReadLineAsync(cancellationToken) is { } line)
            {
                if (ListeningOn().Match(line) is { Success: true } match)
                {
                    return new UnreadServer(process, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
                }
            }
            process.Kill();
            throw new InvalidOperationException("the server ended without logging the port it listens on");
        }

        /// <summary>GETs of a missing file, one after another on one connection: one log line each. Fails if they
        /// are not all answered within 30 s.</summary>
        public async Task AskForMissingFilesAsync(int count, CancellationToken cancellationToken)
        {
            using var serving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            serving.CancelAfter(TimeSpan.FromSeconds(30));
            await using var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: serving.Token);
            for (var i = 0; i < count; i++)
            {
                (await Fetch.GetAsync(client, "nope.bin", serving.Token)).Head.Status.Should().Be(StatusCode.NotFound);
            }
        }

        /// <summary>The server's STATS counter <c>log_lines_dropped</c> (fails if it has none).</summary>
        public async Task<long> LogLinesDroppedAsync(CancellationToken cancellationToken)
        {
            await using var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: cancellationToken);
            var head = await client.StatsAsync(cancellationToken);
            head.Status.Should().Be(StatusCode.Ok);
            return head.Counters.Should().ContainSingle(c => c.Key == "log_lines_dropped").Subject.Value;
        }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill();
                await Process.WaitForExitAsync(CancellationToken.None);
            }
            Process.Dispose();
        }

        [GeneratedRegex(@"Listening on 127\.0\.0\.1:([0-9]+)")]
        private static partial Regex ListeningOn();
    }

    [Fact]
    public async Task The_client_sends_nothing_to_a_terminal_but_its_output()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var closed = new OwnedPort();
        var client = $"{Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet"} {ChildProgram.AssemblyOf("Client")} "
            + $"stats --proxy 127.0.0.1:{closed.Port.ToString(CultureInfo.InvariantCulture)}";
        var start = new ProcessStartInfo("script", ["-q", "-e", "-c", client, "/dev/null"])
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.Environment["TERM"] = "xterm";
        using var script = Process.Start(start)!;
        var terminal = await script.StandardOutput.ReadToEndAsync(deadline.Token);
        await script.WaitForExitAsync(deadline.Token);

        output.WriteLine(terminal.Replace("\u001b", "ESC", StringComparison.Ordinal));
        terminal.Should().StartWith("error: cannot connect to 127.0.0.1:", "nothing comes before the client's message")
            .And.NotContain("\u001b");
        script.ExitCode.Should().Be(5);
    }

    [Fact]
    public async Task The_client_prints_a_peers_message_with_its_control_characters_escaped()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var peer = new ProtocolServer(new HostileMessageSource(), OriginServer.Loopback());
        peer.Start();

        var client = await ChildProgram.RunAsync("Client", output, deadline.Token,
            "stat", "a.bin", "--proxy", $"127.0.0.1:{peer.LocalEndPoint.Port.ToString(CultureInfo.InvariantCulture)}");

        client.ExitCode.Should().Be(3);
        client.Stderr.Should().Contain("error: NotFound: gone\\x1b[2J\\nforged").And.NotContain("\u001b");
    }

    [GeneratedRegex(@"\[WRN\] ([0-9]+) log lines were dropped")]
    private static partial Regex DroppedLines();

    private sealed class HostileMessageSource : IFileSource
    {
        public string Role => "hostile";

        public IEnumerable<KeyValuePair<string, long>> Counters => [];

        public ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken) =>
            ValueTask.FromResult(SourceResult.Error(StatusCode.NotFound, "gone\u001b[2J\nforged"));

        public ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken) =>
            ValueTask.FromResult(ResponseHead.Error(StatusCode.NotFound, "gone\u001b[2J\nforged"));

        public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) => StatAsync(name, cancellationToken);
    }

    [GeneratedRegex(@"GET big\.bin Cut after ([0-9]+) of 33554432 bytes in [0-9.]+ ms CacheHit: peer went away$")]
    private static partial Regex CutLine();

    [GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} \[[A-Z]{3}\] ")]
    private static partial Regex DatedLine();
}
