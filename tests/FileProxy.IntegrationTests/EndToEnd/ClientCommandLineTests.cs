using System.CommandLine;
using System.Globalization;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>
/// The client's command line run in-process, end to end, for its exit codes. It sets the global Serilog logger and
/// writes to the console, so these tests stay in one class (xunit runs a class's tests one at a time).
/// </summary>
public sealed class ClientCommandLineTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Fetching_a_file_exits_0_and_writes_it_on_a_miss_and_on_a_hit()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(700_000, seed: 30);
        cluster.Root.Write("sub/cli file.bin", content);

        var miss = await RunAsync(deadline.Token, "sub/cli file.bin", "--proxy", Proxy(cluster), "-o", downloads.Combine("miss.bin"));
        await cluster.WaitForFillsAsync(deadline.Token);
        var hit = await RunAsync(deadline.Token, "get", "sub/cli file.bin", "--proxy", Proxy(cluster), "--output", downloads.Combine("hit.bin"));

        miss.Should().Be(ExitCodes.Success);
        hit.Should().Be(ExitCodes.Success);
        File.ReadAllBytes(downloads.Combine("miss.bin")).Should().Equal(content);
        File.ReadAllBytes(downloads.Combine("hit.bin")).Should().Equal(content);
        downloads.Files().Should().BeEquivalentTo("miss.bin", "hit.bin");
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["cache_misses"].Should().Be(1);
        stats["cache_hits"].Should().Be(1);
    }

    [Fact]
    public async Task An_output_directory_receives_the_file_under_the_names_last_segment()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(1_000, seed: 31);
        cluster.Root.Write("Ελληνικά/café menu.txt", content);

        var exitCode = await RunAsync(deadline.Token, "Ελληνικά/café menu.txt", "-p", Proxy(cluster), "-o", downloads.Path);

        exitCode.Should().Be(ExitCodes.Success);
        File.ReadAllBytes(downloads.Combine("café menu.txt")).Should().Equal(content);
        downloads.Files().Should().BeEquivalentTo("café menu.txt");
    }

    [Fact]
    public async Task A_missing_file_exits_3_and_leaves_the_output_untouched()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var target = downloads.Write("nope.bin", "previous"u8.ToArray());

        var exitCode = await RunAsync(deadline.Token, "nope.bin", "--proxy", Proxy(cluster), "-o", target);

        exitCode.Should().Be(ExitCodes.NotFound).And.Be(3);
        File.ReadAllBytes(target).Should().Equal("previous"u8.ToArray());
        downloads.Files().Should().BeEquivalentTo("nope.bin");
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("/etc/passwd")]
    [InlineData("a//b")]
    [InlineData("a\\b")]
    [InlineData("sub/..")]
    public async Task A_name_the_client_refuses_exits_4_without_contacting_the_proxy(string name)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");

        var exitCode = await RunAsync(deadline.Token, name, "--proxy", Proxy(cluster), "-o", downloads.Combine("out"));

        exitCode.Should().Be(ExitCodes.Refused).And.Be(4);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["connections_accepted"].Should().Be(1, "only this STATS connection reached the proxy");
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task A_name_the_server_forbids_exits_4()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var outside = new TempDirectory("fileproxy-outside");
        using var downloads = new TempDirectory("fileproxy-out");
        File.CreateSymbolicLink(cluster.Root.Combine("escape"), outside.Write("secret", "secret"u8.ToArray()));

        var exitCode = await RunAsync(deadline.Token, "escape", "--proxy", Proxy(cluster), "-o", downloads.Combine("escape"));

        exitCode.Should().Be(ExitCodes.Refused);
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task Nothing_listening_at_the_proxy_address_exits_5()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var downloads = new TempDirectory("fileproxy-out");
        using var closedPort = new OwnedPort();

        var exitCode = await RunAsync(deadline.Token, "any.bin", "--proxy", $"127.0.0.1:{closedPort.Port.ToString(CultureInfo.InvariantCulture)}",
            "-o", downloads.Combine("any.bin"));

        exitCode.Should().Be(ExitCodes.NetworkError).And.Be(5);
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task A_miss_with_the_origin_down_exits_5()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("down.bin", Fetch.RandomBytes(1_000, seed: 32));
        await cluster.StopOriginAsync();

        var exitCode = await RunAsync(deadline.Token, "down.bin", "--proxy", Proxy(cluster), "-o", downloads.Combine("down.bin"));

        exitCode.Should().Be(ExitCodes.NetworkError);
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task The_origin_dying_mid_transfer_exits_5_and_leaves_no_partial_output()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: faults.Wrap);
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("cut.bin", Fetch.RandomBytes(2 * 1024 * 1024, seed: 33));
        faults.CutBodiesAfter(1_000_000);

        var exitCode = await RunAsync(deadline.Token, "cut.bin", "--proxy", Proxy(cluster), "-o", downloads.Combine("cut.bin"), "--retries", "0");

        exitCode.Should().Be(ExitCodes.NetworkError);
        faults.BodiesCut.Should().Be(1);
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task Two_proxy_addresses_fetch_the_file_over_two_subflows_and_exit_0()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(6_000_000, seed: 32);
        cluster.Root.Write("two.bin", content);

        var exitCode = await RunAsync(deadline.Token, "two.bin", "--proxy", Proxy(cluster), "--proxy", Proxy(cluster),
            "--multipath", "all", "-o", downloads.Combine("two.bin"));

        exitCode.Should().Be(ExitCodes.Success);
        File.ReadAllBytes(downloads.Combine("two.bin")).Should().Equal(content);
        downloads.Files().Should().BeEquivalentTo("two.bin");
    }

    [Fact]
    public async Task An_unknown_multipath_mode_is_a_usage_error()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        var exitCode = await RunAsync(deadline.Token, "x.bin", "--proxy", "127.0.0.1:1", "--proxy", "127.0.0.2:1", "--multipath", "sometimes");

        exitCode.Should().NotBe(ExitCodes.Success).And.NotBe(ExitCodes.NetworkError, "the command line is refused before anything connects");
    }

    private static string Proxy(Cluster cluster) => $"127.0.0.1:{cluster.ProxyPort.ToString(CultureInfo.InvariantCulture)}";

    private static Task<int> RunAsync(CancellationToken cancellationToken, params string[] args) =>
        ClientCommands.Build().Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, cancellationToken);
}
