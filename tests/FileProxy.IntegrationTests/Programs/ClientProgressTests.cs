using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Programs;

/// <summary>What the built client shows while and after it fetches: bars on a terminal (a real pseudo-terminal),
/// nothing of them anywhere else, --quiet and --json.</summary>
public sealed partial class ClientProgressTests(ITestOutputHelper output)
{
    private const string Escape = "\u001b";

    [SkippableFact]
    public async Task A_terminal_shows_a_bar_with_bytes_and_cache_result_while_the_file_comes()
    {
        Skip.IfNot(PseudoTerminal.Available, "util-linux's script is not installed");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var gate = new OriginGate(holdAfter: 1_000_000);
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: gate.Wrap);
        cluster.Root.Write("big.bin", Fetch.RandomBytes(4_194_304, seed: 70));
        using var work = new TempDirectory("fileproxy-pty");

        await using var terminal = PseudoTerminal.StartClient(output, work.Path, ["big.bin", "--proxy", Proxy(cluster)]);
        // 1,000,000 of 4,194,304 bytes arrived, and the origin holds the rest: the bar must show them, whatever
        // moment the refresh takes.
        await terminal.WaitForAsync(screen => screen.Contains("23%", StringComparison.Ordinal), "the bar at 23%", deadline.Token);
        var during = terminal.Screen;
        var duringText = Colours().Replace(during, "");
        gate.Open();
        var exit = await terminal.WaitForExitAsync(deadline.Token);

        output.WriteLine(terminal.Screen.Replace(Escape, "^[", StringComparison.Ordinal));
        exit.Should().Be(0);
        duringText.Should().Contain("big.bin (cache miss)", "the bar names the file and where it comes from")
            .And.Contain("━", "it is a bar")
            .And.Contain("1.0/4.0 MiB", "it shows the bytes so far out of the file's size")
            .And.MatchRegex(@"\d [KMG]iB/s", "it shows the rate");
        during.Should().Contain(Escape + "[?25l", "the cursor is hidden while the bars are drawn, by ANSI codes although TERM is unset");
        terminal.Screen.Should().Contain("big.bin: 4194304 bytes (4.00 MiB)", "the file's result line follows its bar")
            .And.EndWith(Escape + "[?25h", "the cursor comes back at the end");
        File.ReadAllBytes(work.Combine("big.bin")).Should().HaveCount(4_194_304);
    }

    [SkippableFact]
    public async Task No_bar_is_drawn_when_standard_error_is_no_terminal()
    {
        Skip.IfNot(PseudoTerminal.Available, "util-linux's script is not installed");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("file.bin", Fetch.RandomBytes(2_000_000, seed: 71));
        using var work = new TempDirectory("fileproxy-pty");

        await using var terminal = PseudoTerminal.StartClient(output, work.Path, ["file.bin", "--proxy", Proxy(cluster)], redirect: "2>stderr.txt");
        var exit = await terminal.WaitForExitAsync(deadline.Token);
        var piped = await ClientProcess.RunAsync(output, ["file.bin", "--proxy", Proxy(cluster), "-o", work.Combine("piped.bin")], deadline.Token);

        exit.Should().Be(0);
        File.ReadAllText(work.Combine("stderr.txt")).Should().BeEmpty("standard error is a file: no bar, no escape code");
        terminal.Screen.Should().Contain("file.bin: 2000000 bytes").And.NotContain(Escape, "the result line on the terminal is plain text");
        piped.ExitCode.Should().Be(0);
        piped.StandardError.Should().BeEmpty("standard error is a pipe");
        piped.Text().Should().StartWith("file.bin: 2000000 bytes").And.NotContain(Escape);
    }

    [SkippableFact]
    public async Task No_bar_is_drawn_into_a_file_written_to_the_terminal()
    {
        Skip.IfNot(PseudoTerminal.Available, "util-linux's script is not installed");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("notes.txt", System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("a line of notes\n", 2000))));
        using var work = new TempDirectory("fileproxy-pty");

        await using var terminal = PseudoTerminal.StartClient(output, work.Path, ["notes.txt", "--proxy", Proxy(cluster), "-o", "-"]);
        var exit = await terminal.WaitForExitAsync(deadline.Token);

        exit.Should().Be(0);
        terminal.Screen.Should().Contain("a line of notes").And.Contain("notes.txt: 32000 bytes")
            .And.NotContain(Escape, "the file itself went to the terminal: no bar is drawn into it");
    }

    [SkippableFact]
    public async Task Quiet_prints_nothing_on_success_even_on_a_terminal_and_the_error_on_failure()
    {
        Skip.IfNot(PseudoTerminal.Available, "util-linux's script is not installed");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(100_000, seed: 72);
        cluster.Root.Write("file.bin", content);
        using var work = new TempDirectory("fileproxy-pty");

        await using var terminal = PseudoTerminal.StartClient(output, work.Path, ["file.bin", "--proxy", Proxy(cluster), "--quiet"]);
        var exit = await terminal.WaitForExitAsync(deadline.Token);
        var batch = await ClientProcess.RunAsync(output, ["file.bin", "missing.bin", "--proxy", Proxy(cluster), "-q", "-o", work.Combine("batch")], deadline.Token);

        exit.Should().Be(0);
        terminal.Screen.Should().BeEmpty("--quiet prints only errors");
        File.ReadAllBytes(work.Combine("file.bin")).Should().Equal(content);
        batch.ExitCode.Should().Be(3, "the missing file is not found");
        batch.StandardOutput.Should().BeEmpty("no result lines and no summary");
        batch.Lines().Should().ContainSingle().Which.Should().StartWith("error: missing.bin: NotFound");
    }

    [Fact]
    public async Task Json_prints_one_object_per_file_with_what_a_script_needs()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(300_000, seed: 73);
        cluster.Root.Write("dir/a.bin", content);
        using var work = new TempDirectory("fileproxy-json");

        var first = await ClientProcess.RunAsync(output, ["dir/a.bin", "missing.bin", "--proxy", Proxy(cluster), "--json", "-o", work.Path], deadline.Token);
        var again = await ClientProcess.RunAsync(output, ["dir/a.bin", "--proxy", Proxy(cluster), "--json", "-o", work.Combine("single.bin")], deadline.Token);

        first.ExitCode.Should().Be(3, "one file was not found");
        var objects = first.Text().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        objects.Should().HaveCount(2, "one object per file and nothing else on standard output");
        var fetched = objects.Single(o => o.GetProperty("name").GetString() == "dir/a.bin");
        fetched.GetProperty("output").GetString().Should().Be(work.Combine("dir", "a.bin"));
        fetched.GetProperty("bytes").GetInt64().Should().Be(300_000);
        fetched.GetProperty("seconds").GetDouble().Should().BePositive();
        fetched.GetProperty("source").GetString().Should().Be("cache_miss");
        fetched.GetProperty("digest").GetString().Should().Be(ContentDigest.Of(content).ToString());
        fetched.GetProperty("verified").GetBoolean().Should().BeTrue();
        fetched.GetProperty("attempts").GetInt32().Should().Be(1);
        fetched.GetProperty("resumed").GetInt64().Should().Be(0);
        fetched.GetProperty("exit_code").GetInt32().Should().Be(0);
        fetched.GetProperty("error").ValueKind.Should().Be(JsonValueKind.Null);
        var missing = objects.Single(o => o.GetProperty("name").GetString() == "missing.bin");
        missing.GetProperty("exit_code").GetInt32().Should().Be(3);
        missing.GetProperty("error").GetString().Should().Contain("NotFound");
        missing.GetProperty("verified").GetBoolean().Should().BeFalse();
        first.StandardError.Should().Contain("error: missing.bin: NotFound").And.Contain("2 files: 1 fetched, 1 failed",
            "the summary goes to standard error, leaving standard output to JSON");

        again.ExitCode.Should().Be(0);
        var single = JsonDocument.Parse(again.Text()).RootElement;
        single.GetProperty("source").GetString().Should().Be("cache_hit");
        single.GetProperty("output").GetString().Should().Be(work.Combine("single.bin"));
        again.StandardError.Should().BeEmpty();
    }

    /// <summary>ANSI colour codes (SGR), which split the bar's figures.</summary>
    [GeneratedRegex("\u001b\\[[0-9;]*m")]
    private static partial Regex Colours();

    private static string Proxy(Cluster cluster) => $"127.0.0.1:{cluster.ProxyPort.ToString(CultureInfo.InvariantCulture)}";
}
