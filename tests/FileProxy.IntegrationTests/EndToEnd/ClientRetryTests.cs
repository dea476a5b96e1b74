using System.Globalization;
using System.Text.RegularExpressions;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>
/// <c>client --retries N</c>, the real program against real servers on loopback: passing failures (a cut body, a
/// Busy refusal, an origin that is down) are tried again from the first byte not received, with one line each on
/// standard error; lasting ones (NotFound, a refused name) are not; when the retries run out the exit code is the
/// last failure's.
/// </summary>
public sealed partial class ClientRetryTests(ITestOutputHelper output)
{
    private const int Size = 3 * 1024 * 1024 + 7;
    private const int CutAt = 1_500_000;

    [Theory]
    [InlineData("file")]
    [InlineData("-")]
    public async Task A_body_cut_once_is_retried_from_the_first_byte_not_received(string target)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var control = new OriginControl();
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: source => faults.Wrap(control.Wrap(source)));
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 111);
        cluster.Root.Write("big.bin", content);
        faults.CutBodiesAfter(CutAt, times: 1);
        var outputPath = target == "-" ? "-" : downloads.Combine("big.bin");

        var run = await ClientProcess.RunAsync(output, ["big.bin", "-p", Address(cluster.OriginPort), "-o", outputPath], deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        (target == "-" ? run.StandardOutput : File.ReadAllBytes(outputPath)).Should().Equal(content);
        var gets = control.Requests("big.bin");
        gets.Should().HaveCount(2);
        gets[1].Request.Offset.Should().Be(CutAt, "the retry asks only for what did not arrive");
        gets[1].Request.IfVersion.Should().NotBeEmpty("and only of the version the first bytes belong to");
        var kept = string.Create(CultureInfo.InvariantCulture, $" ({CutAt} bytes kept)");
        run.Lines().Should().Contain(line => line.StartsWith("big.bin: ", StringComparison.Ordinal)
            && line.Contains("; retry 1 of 3 in ", StringComparison.Ordinal) && line.EndsWith(kept, StringComparison.Ordinal));
        downloads.Files().Should().BeEquivalentTo(target == "-" ? [] : ["big.bin"]);
    }

    [Fact]
    public async Task A_proxy_fill_cut_at_the_origin_is_retried_through_the_proxy()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: faults.Wrap);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 112);
        cluster.Root.Write("big.bin", content);
        faults.CutBodiesAfter(CutAt, times: 1);

        var run = await ClientProcess.RunAsync(output, ["big.bin", "-p", Address(cluster.ProxyPort), "-o", downloads.Combine("big.bin")], deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        File.ReadAllBytes(downloads.Combine("big.bin")).Should().Equal(content);
        faults.BodiesCut.Should().Be(1);
        run.Lines().Should().ContainSingle(line => line.Contains("; retry 1 of 3 in ", StringComparison.Ordinal));
        run.Text().Should().Contain("2 attempts");
    }

    [Fact]
    public async Task A_connection_refused_as_Busy_is_retried_once_the_server_has_room()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(200_000, seed: 113);
        root.Write("a.bin", content);
        using var downloads = new TempDirectory("fileproxy-out");
        var server = OriginServer.Create(root.Path, OriginServer.Loopback() with { MaxConnectionsPerAddress = 1 }, TestLog.For(output, "origin"));
        await using var _ = server;
        server.Start();
        var held = await FileClient.ConnectAsync("127.0.0.1", server.LocalEndPoint.Port, cancellationToken: deadline.Token);

        // Plenty of retries: the test lets the server have room only after it refused the client once.
        var client = ClientProcess.RunAsync(output, ["a.bin", "-p", Address(server.LocalEndPoint.Port), "-o", downloads.Combine("a.bin"), "--retries", "8"], deadline.Token);
        await Poll.UntilAsync(async () => (await held.StatsAsync(deadline.Token)).Counters
            .Any(counter => counter is { Key: "connections_refused_busy", Value: > 0 }), "the client was refused as Busy", deadline.Token);
        await held.DisposeAsync();
        var run = await client;

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        File.ReadAllBytes(downloads.Combine("a.bin")).Should().Equal(content);
        run.Lines().Should().Contain(line => line.StartsWith("a.bin: Busy: ", StringComparison.Ordinal) && line.Contains("; retry 1 of 8 in ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_miss_while_the_origin_is_down_is_retried_until_it_is_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(100_000, seed: 114);
        cluster.Root.Write("a.bin", content);
        await cluster.StopOriginAsync();

        var client = ClientProcess.RunAsync(output, ["a.bin", "-p", Address(cluster.ProxyPort), "-o", downloads.Combine("a.bin"), "--retries", "8"], deadline.Token);
        await Poll.UntilAsync(async () => (await cluster.ProxyStatsAsync(deadline.Token))["upstream_failures"] > 0,
            "the proxy failed to reach the origin for the client", deadline.Token);
        cluster.RestartOrigin();
        var run = await client;

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        File.ReadAllBytes(downloads.Combine("a.bin")).Should().Equal(content);
        run.Lines().Should().Contain(line => line.StartsWith("a.bin: UpstreamUnavailable: ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("missing.bin", ExitCodes.NotFound)]
    [InlineData("escape", ExitCodes.Refused)]
    public async Task A_lasting_failure_is_not_retried(string name, int exitCode)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var control = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: control.Wrap);
        using var outside = new TempDirectory("fileproxy-outside");
        File.CreateSymbolicLink(cluster.Root.Combine("escape"), outside.Write("secret", "secret"u8.ToArray()));
        using var downloads = new TempDirectory("fileproxy-out");

        var run = await ClientProcess.RunAsync(output, [name, "-p", Address(cluster.OriginPort), "-o", downloads.Combine("out")], deadline.Token);

        run.ExitCode.Should().Be(exitCode);
        control.Requests(name).Should().ContainSingle();
        run.Lines().Should().ContainSingle().Which.Should().StartWith($"error: {name}: ").And.NotContain("retry").And.NotContain("gave up");
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task When_the_retries_run_out_the_last_failure_is_the_error_and_each_wait_grew()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var closedPort = new OwnedPort();
        using var downloads = new TempDirectory("fileproxy-out");

        var run = await ClientProcess.RunAsync(output, ["a.bin", "-p", Address(closedPort.Port), "-o", downloads.Combine("a.bin"), "--retries", "3"], deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        var lines = run.Lines();
        lines.Should().HaveCount(4);
        var waits = lines[..3].Select(line => Wait().Match(line)).ToList();
        waits.Should().OnlyContain(match => match.Success);
        waits.Select(match => int.Parse(match.Groups["retry"].Value, CultureInfo.InvariantCulture)).Should().Equal(1, 2, 3);
        var milliseconds = waits.Select(match => double.Parse(match.Groups["ms"].Value, CultureInfo.InvariantCulture)).ToList();
        milliseconds[0].Should().BeInRange(125, 250);
        milliseconds[1].Should().BeInRange(250, 500);
        milliseconds[2].Should().BeInRange(500, 1000);
        lines[3].Should().StartWith("error: a.bin: cannot connect to 127.0.0.1:").And.EndWith("Connection refused (gave up after 4 attempts)");
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task A_file_that_changes_again_after_starting_over_fails_clearly()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var control = new OriginControl();
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: source => faults.Wrap(control.Wrap(source)));
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("big.bin", Fetch.RandomBytes(Size, seed: 115));
        var versions = 0;
        // Each cut comes with a new version of the file, written beside it and renamed over it.
        faults.CutBodiesAfter(CutAt, times: 2, onCut: () =>
        {
            var staging = cluster.Root.Write("big.bin.new", Fetch.RandomBytes(Size, seed: 116 + Interlocked.Increment(ref versions)));
            File.Move(staging, cluster.Root.Combine("big.bin"), overwrite: true);
        });

        var run = await ClientProcess.RunAsync(output, ["big.bin", "-p", Address(cluster.OriginPort), "-o", downloads.Combine("big.bin")], deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        control.Requests("big.bin").Select(get => (get.Request.Offset, get.Status)).Should().Equal(
            (0UL, StatusCode.Ok), ((ulong)CutAt, StatusCode.VersionMismatch), (0UL, StatusCode.Ok), ((ulong)CutAt, StatusCode.VersionMismatch));
        run.Lines().Should().ContainSingle(line => line.StartsWith("big.bin: changed at the origin", StringComparison.Ordinal) && line.EndsWith("; starting over", StringComparison.Ordinal));
        run.Lines()[^1].Should().StartWith("error: big.bin: changed at the origin").And.EndWith(", and again after starting over");
        downloads.Files().Should().BeEmpty();
    }

    private static string Address(int port) => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{port}");

    [GeneratedRegex(@"; retry (?<retry>[0-9]+) of 3 in (?<ms>[0-9.]+) ms$")]
    private static partial Regex Wait();
}
