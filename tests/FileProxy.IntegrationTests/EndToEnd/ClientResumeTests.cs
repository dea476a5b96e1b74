using System.Globalization;
using System.Text.Json;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>
/// <c>client --resume</c>, the real program against a real origin on loopback: a download cut mid-body leaves
/// <c>.NAME.partial</c> and its sidecar; the next run hashes what is there and asks only for the rest (the origin
/// records each GET's offset and if-version), and the result is byte-exact. A changed file, or bytes on disk that
/// are not the start of the file, make it start over.
/// </summary>
public sealed class ClientResumeTests(ITestOutputHelper output)
{
    private const int Size = 3 * 1024 * 1024 + 7;
    private const int CutAt = 1_500_000;

    [Fact]
    public async Task A_cut_download_leaves_a_partial_file_that_the_next_run_completes_with_a_ranged_get()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, faults) = await StartAsync();
        await using var _ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 101);
        cluster.Root.Write("big.bin", content);
        var target = downloads.Combine("big.bin");
        faults.CutBodiesAfter(CutAt, times: 1);

        var cut = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--resume", "--retries", "0");

        cut.ExitCode.Should().Be(ExitCodes.NetworkError);
        downloads.Files().Should().BeEquivalentTo(".big.bin.partial", ".big.bin.partial.meta");
        new FileInfo(downloads.Combine(".big.bin.partial")).Length.Should().Be(CutAt, "every byte that arrived before the cut is kept");
        control.Requests("big.bin").Should().ContainSingle().Which.Request.IfVersion.Should().BeEmpty("the first GET asks for any version");
        File.ReadAllText(downloads.Combine(".big.bin.partial.meta")).Should().Contain("name big.bin\n").And.Contain(string.Create(CultureInfo.InvariantCulture, $"size {Size}\n"));

        var resumed = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--resume");

        resumed.ExitCode.Should().Be(ExitCodes.Success, resumed.StandardError);
        File.ReadAllBytes(target).Should().Equal(content);
        downloads.Files().Should().BeEquivalentTo("big.bin");
        var gets = control.Requests("big.bin");
        gets.Should().HaveCount(2);
        gets[1].Request.Offset.Should().Be(CutAt, "the second run asks only for the bytes it does not have");
        gets[1].Request.Length.Should().Be(ProtocolLimits.ToEnd);
        gets[1].Request.IfVersion.Should().NotBeEmpty("the rest must be of the version the partial file holds");
        gets[1].Status.Should().Be(StatusCode.Ok);
        resumed.Text().Should().Contain(string.Create(CultureInfo.InvariantCulture, $"big.bin: {Size - CutAt} bytes"))
            .And.Contain("blake3 verified").And.Contain(string.Create(CultureInfo.InvariantCulture, $"resumed after {CutAt} bytes on disk"));
    }

    [Fact]
    public async Task A_partial_file_of_a_version_that_changed_at_the_origin_starts_over()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, faults) = await StartAsync();
        await using var _ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("big.bin", Fetch.RandomBytes(Size, seed: 102));
        var target = downloads.Combine("big.bin");
        faults.CutBodiesAfter(CutAt, times: 1);
        (await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--resume", "--retries", "0")).ExitCode.Should().Be(ExitCodes.NetworkError);
        var replacement = Fetch.RandomBytes(Size + 1000, seed: 103);
        Replace(cluster, "big.bin", replacement);

        var run = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--resume");

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        File.ReadAllBytes(target).Should().Equal(replacement);
        downloads.Files().Should().BeEquivalentTo("big.bin");
        run.Lines().Should().ContainSingle(line => line.Contains("changed at the origin", StringComparison.Ordinal) && line.EndsWith("; starting over", StringComparison.Ordinal));
        var gets = control.Requests("big.bin");
        gets.Select(get => (get.Request.Offset, get.Status)).Should().Equal(
            (0UL, StatusCode.Ok), ((ulong)CutAt, StatusCode.VersionMismatch), (0UL, StatusCode.Ok));
        gets[2].Request.IfVersion.Should().BeEmpty("starting over takes whatever version is there now");
    }

    [Fact]
    public async Task An_output_that_is_already_complete_is_checked_and_nothing_is_fetched()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, _) = await StartAsync();
        await using var __ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 104);
        cluster.Root.Write("big.bin", content);
        var target = downloads.Write("big.bin", content);
        var written = new FileInfo(target).LastWriteTimeUtc;

        var run = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--resume");

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        run.Text().Should().Contain(string.Create(CultureInfo.InvariantCulture, $"big.bin: already complete, {Size} bytes")).And.Contain("blake3 verified");
        var get = control.Requests("big.bin").Should().ContainSingle().Subject;
        get.Request.Offset.Should().Be(Size, "a GET from the end brings the head (version, digest) and no body");
        File.ReadAllBytes(target).Should().Equal(content);
        new FileInfo(target).LastWriteTimeUtc.Should().Be(written, "a complete output is left alone");
        downloads.Files().Should().BeEquivalentTo("big.bin");
    }

    [Fact]
    public async Task A_batch_given_two_proxies_resumes_over_the_first()
    {
        // Multipath cannot resume: --resume takes one path, for several names as for one.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, _) = await StartAsync();
        await using var __ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 105);
        cluster.Root.Write("big.bin", content);
        cluster.Root.Write("small.bin", [1, 2, 3]);
        downloads.Write("big.bin", content);
        var proxy = string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{cluster.OriginPort}");

        var run = await ClientProcess.RunAsync(output, ["big.bin", "small.bin", "-o", downloads.Path, "--resume", "-p", proxy, "-p", proxy],
            deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        run.Text().Should().Contain("big.bin: already complete");
        control.Requests("big.bin").Should().ContainSingle().Which.Request.Offset.Should().Be(Size, "only the head, no body again");
        File.ReadAllBytes(downloads.Combine("small.bin")).Should().Equal(1, 2, 3);
    }

    [Fact]
    public async Task A_shorter_output_is_continued_from_its_length()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, _) = await StartAsync();
        await using var __ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 105);
        cluster.Root.Write("big.bin", content);
        var target = downloads.Write("big.bin", content[..1_000_000]);

        var run = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--resume", "--json");

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        File.ReadAllBytes(target).Should().Equal(content);
        var report = JsonDocument.Parse(run.Text()).RootElement;
        report.GetProperty("resumed").GetInt64().Should().Be(1_000_000, "the output's bytes were kept");
        report.GetProperty("bytes").GetInt64().Should().Be(Size - 1_000_000, "only the rest came over the network");
        report.GetProperty("attempts").GetInt32().Should().Be(1);
        report.GetProperty("verified").GetBoolean().Should().BeTrue();
        var get = control.Requests("big.bin").Should().ContainSingle().Subject;
        get.Request.Offset.Should().Be(1_000_000UL);
        get.Request.IfVersion.Should().BeEmpty("the output's version is not known");
        downloads.Files().Should().BeEquivalentTo("big.bin");
    }

    [Fact]
    public async Task A_shorter_output_that_is_not_the_start_of_the_file_makes_it_start_over_once()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, _) = await StartAsync();
        await using var __ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 106);
        cluster.Root.Write("big.bin", content);
        var target = downloads.Write("big.bin", Fetch.RandomBytes(1_000_000, seed: 107));

        var run = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--resume");

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        File.ReadAllBytes(target).Should().Equal(content);
        run.Lines().Should().ContainSingle(line => line.Contains("bytes that were on disk are not the start of this file; starting over", StringComparison.Ordinal));
        control.Requests("big.bin").Select(get => get.Request.Offset).Should().Equal(1_000_000UL, 0UL);
        downloads.Files().Should().BeEquivalentTo("big.bin");
    }

    [Fact]
    public async Task Without_resume_a_cut_download_leaves_nothing_and_an_existing_output_is_replaced_whole()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, faults) = await StartAsync();
        await using var _ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(Size, seed: 108);
        cluster.Root.Write("big.bin", content);
        var target = downloads.Write("big.bin", content[..1_000_000]);
        faults.CutBodiesAfter(CutAt, times: 1);

        var cut = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target, "--retries", "0");
        var whole = await RunAsync(cluster, deadline.Token, "big.bin", "-o", target);

        cut.ExitCode.Should().Be(ExitCodes.NetworkError);
        whole.ExitCode.Should().Be(ExitCodes.Success, whole.StandardError);
        File.ReadAllBytes(target).Should().Equal(content);
        control.Requests("big.bin").Select(get => get.Request.Offset).Should().Equal(0UL, 0UL);
        downloads.Files().Should().BeEquivalentTo("big.bin");
    }

    [Fact]
    public async Task A_partial_file_another_client_is_writing_is_left_alone_with_exit_7()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var (cluster, control, _) = await StartAsync();
        await using var __ = cluster;
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("big.bin", Fetch.RandomBytes(Size, seed: 109));
        var partial = downloads.Write(".big.bin.partial", Fetch.RandomBytes(1000, seed: 110));
        // What a client writing it holds: an exclusive flock(2) on the partial file.
        using (new FileStream(partial, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            var run = await RunAsync(cluster, deadline.Token, "big.bin", "-o", downloads.Combine("big.bin"), "--resume");

            run.ExitCode.Should().Be(ExitCodes.LocalIoError);
            run.Lines().Should().ContainSingle().Which.Should().Be("error: big.bin: cannot resume " + downloads.Combine("big.bin")
                + ": .big.bin.partial is being written by another client");
        }
        control.Requests("big.bin").Should().BeEmpty();
        File.ReadAllBytes(partial).Should().Equal(Fetch.RandomBytes(1000, seed: 110));
    }

    [Theory]
    [InlineData("-o", "-")]
    [InlineData("--offset", "10")]
    public async Task Resume_with_standard_output_or_a_range_is_a_usage_error(string option, string value)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var downloads = new TempDirectory("fileproxy-out");

        var run = await ClientProcess.RunAsync(output, ["big.bin", "-p", "127.0.0.1:1", "--resume", option, value], deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.UsageError);
        run.Lines().Should().ContainSingle().Which.Should().StartWith("error: --resume");
    }

    private async Task<(Cluster Cluster, OriginControl Control, OriginFaults Faults)> StartAsync()
    {
        var control = new OriginControl();
        var faults = new OriginFaults();
        var cluster = await Cluster.StartAsync(output, wrapOrigin: source => faults.Wrap(control.Wrap(source)));
        return (cluster, control, faults);
    }

    /// <summary>Replaces a served file by a new one (a new inode: a new version tag), as a writer that renames does.</summary>
    private static void Replace(Cluster cluster, string name, byte[] content)
    {
        var staging = cluster.Root.Write(name + ".new", content);
        File.Move(staging, cluster.Root.Combine(name), overwrite: true);
    }

    /// <summary>Runs the client program straight against the origin, so that its log shows the client's own GETs.</summary>
    private Task<ClientRun> RunAsync(Cluster cluster, CancellationToken cancellationToken, params string[] args) =>
        ClientProcess.RunAsync(output, [.. args, "-p", string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{cluster.OriginPort}")], cancellationToken);
}
