using System.Globalization;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Programs;

/// <summary>Many files in one run of the built client: names on the command line, from a file or standard input,
/// fetched in parallel under one directory.</summary>
public sealed class ClientBatchTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Several_names_go_under_the_output_directory_with_their_directories()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var files = Files(cluster, "a.bin", "dir/b.bin", "dir/sub/c d.bin");
        using var work = new TempDirectory("fileproxy-batch");

        var run = await ClientProcess.RunAsync(output, [.. files.Keys, "--proxy", Proxy(cluster), "-o", work.Combine("out")], deadline.Token);

        run.ExitCode.Should().Be(0);
        foreach (var (name, content) in files)
        {
            File.ReadAllBytes(work.Combine("out", name)).Should().Equal(content, "{0} keeps its directories under -o", name);
        }
        var lines = run.Text().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().HaveCount(4, "one line per file and the summary");
        lines[^1].Should().MatchRegex(@"^3 files: 3 fetched, 0 failed, 6000 bytes \(5\.86 KiB\) in \S+ m?s, ");
    }

    [Fact]
    public async Task Flat_drops_directories_and_refuses_two_names_that_would_share_a_file()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var files = Files(cluster, "x/one.bin", "y/two.bin", "z/one.bin");
        using var work = new TempDirectory("fileproxy-batch");

        var flat = await ClientProcess.RunAsync(output, ["x/one.bin", "y/two.bin", "--flat", "--proxy", Proxy(cluster), "-o", work.Combine("flat")], deadline.Token);
        var clash = await ClientProcess.RunAsync(output, ["x/one.bin", "y/two.bin", "z/one.bin", "--flat", "--proxy", Proxy(cluster), "-o", work.Combine("clash")], deadline.Token);

        flat.ExitCode.Should().Be(0);
        File.ReadAllBytes(work.Combine("flat", "one.bin")).Should().Equal(files["x/one.bin"]);
        File.ReadAllBytes(work.Combine("flat", "two.bin")).Should().Equal(files["y/two.bin"]);
        clash.ExitCode.Should().Be(2, "a plan that would overwrite one file with another is a usage error");
        clash.StandardError.Should().Contain("'x/one.bin' and 'z/one.bin' would both be written to");
        Directory.Exists(work.Combine("clash")).Should().BeFalse("nothing is fetched when the plan is wrong");
    }

    [Fact]
    public async Task A_refused_name_fails_alone_and_the_others_are_fetched()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var files = Files(cluster, "first.bin", "last.bin");
        using var work = new TempDirectory("fileproxy-batch");

        var run = await ClientProcess.RunAsync(output, ["first.bin", "../etc/passwd", "last.bin", "--proxy", Proxy(cluster), "-o", work.Path], deadline.Token);

        run.ExitCode.Should().Be(4, "the exit code is the first failed file's: a refused name");
        run.StandardError.Should().Contain("error: refusing name '../etc/passwd': name has a '..' segment");
        File.ReadAllBytes(work.Combine("first.bin")).Should().Equal(files["first.bin"]);
        File.ReadAllBytes(work.Combine("last.bin")).Should().Equal(files["last.bin"]);
        run.Text().Should().Contain("3 files: 2 fetched, 1 failed");
    }

    [Fact]
    public async Task Names_come_from_a_list_file_or_standard_input()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var files = Files(cluster, "a.bin", "b c.bin", "d/e.bin");
        using var work = new TempDirectory("fileproxy-batch");
        // Written on Windows, with a blank line and a name given twice.
        File.WriteAllText(work.Combine("list.txt"), "a.bin\r\n\r\nb c.bin\r\nd/e.bin\r\na.bin\r\n");

        var fromFile = await ClientProcess.RunAsync(output, ["-i", work.Combine("list.txt"), "--proxy", Proxy(cluster), "-o", work.Combine("file")], deadline.Token);
        var fromStdin = await ClientProcess.RunAsync(output, ["d/e.bin", "-i", "-", "--proxy", Proxy(cluster), "-o", work.Combine("stdin")], deadline.Token,
            redirect: $"< '{work.Combine("list.txt")}'");

        fromFile.ExitCode.Should().Be(0);
        fromStdin.ExitCode.Should().Be(0);
        foreach (var (name, content) in files)
        {
            File.ReadAllBytes(work.Combine("file", name)).Should().Equal(content);
            File.ReadAllBytes(work.Combine("stdin", name)).Should().Equal(content);
        }
        fromFile.Text().Should().Contain("3 files: 3 fetched, 0 failed", "a name listed twice is fetched once");
        fromStdin.Text().Should().Contain("3 files: 3 fetched, 0 failed", "a name given and listed is fetched once");
    }

    [Fact]
    public async Task An_unreadable_name_list_is_a_usage_error_that_says_why()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var work = new TempDirectory("fileproxy-batch");
        using var closed = new OwnedPort();
        var proxy = $"127.0.0.1:{closed.Port.ToString(CultureInfo.InvariantCulture)}";

        var missing = await ClientProcess.RunAsync(output, ["-i", work.Combine("nope.txt"), "--proxy", proxy], deadline.Token);
        var directory = await ClientProcess.RunAsync(output, ["-i", work.Path, "--proxy", proxy], deadline.Token);

        missing.ExitCode.Should().Be(2);
        missing.StandardError.Should().Be($"error: cannot read the name list {work.Combine("nope.txt")}: no such file\n");
        directory.ExitCode.Should().Be(2);
        directory.StandardError.Should().StartWith($"error: cannot read the name list {work.Path}: ").And.NotContain("   at ");
    }

    [Fact]
    public async Task Parallel_fetches_keep_their_connections_for_the_next_files()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var files = Files(cluster, [.. Enumerable.Range(0, 12).Select(i => $"f{i.ToString(CultureInfo.InvariantCulture)}.bin")]);
        using var work = new TempDirectory("fileproxy-batch");

        var run = await ClientProcess.RunAsync(output, [.. files.Keys, "--parallel", "3", "--proxy", Proxy(cluster), "-o", work.Path], deadline.Token);

        run.ExitCode.Should().Be(0);
        work.Files().Should().HaveCount(12);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["connections_accepted"].Should().BeInRange(1, 4, "3 workers keep their connections (and the stats request is one more)");
        stats["requests"].Should().Be(13, "12 GETs and the STATS");
    }

    [Fact]
    public async Task Several_names_refuse_ranges_and_standard_output()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var closed = new OwnedPort();
        var proxy = $"127.0.0.1:{closed.Port.ToString(CultureInfo.InvariantCulture)}";

        var range = await ClientProcess.RunAsync(output, ["a", "b", "--offset", "10", "--proxy", proxy], deadline.Token);
        var stdout = await ClientProcess.RunAsync(output, ["a", "b", "-o", "-", "--proxy", proxy], deadline.Token);
        var nothing = await ClientProcess.RunAsync(output, ["--proxy", proxy], deadline.Token);

        range.ExitCode.Should().Be(2);
        range.StandardError.Should().Contain("--offset and --length fetch a range of one file");
        stdout.ExitCode.Should().Be(2);
        stdout.StandardError.Should().Contain("several files cannot go to standard output");
        nothing.ExitCode.Should().Be(2);
        nothing.StandardError.Should().StartWith("error: nothing to fetch");
    }

    private static Dictionary<string, byte[]> Files(Cluster cluster, params string[] names)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (name, index) in names.Select((name, index) => (name, index)))
        {
            files[name] = Fetch.RandomBytes(names.Length == 3 ? 2000 : 1000 + index, seed: 80 + index);
            cluster.Root.Write(name, files[name]);
        }
        return files;
    }

    private static string Proxy(Cluster cluster) => $"127.0.0.1:{cluster.ProxyPort.ToString(CultureInfo.InvariantCulture)}";
}
