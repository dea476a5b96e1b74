using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>The client program's download: a temporary file renamed into place once complete and verified; on
/// failure the output is left as it was and no temporary file remains.</summary>
public sealed class ClientDownloadTests(ITestOutputHelper output)
{
    private static readonly byte[] Previous = "previous content"u8.ToArray();

    [Fact]
    public async Task A_download_writes_the_exact_bytes_and_leaves_no_temporary_file()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(3 * 1024 * 1024 + 5, seed: 20);
        cluster.Root.Write("dir/payload.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var miss = await DownloadAsync(client, "dir/payload.bin", downloads.Combine("miss.bin"), deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var hit = await DownloadAsync(client, "dir/payload.bin", downloads.Combine("hit.bin"), deadline.Token);

        miss.ExitCode.Should().Be(ExitCodes.Success, miss.Message);
        hit.ExitCode.Should().Be(ExitCodes.Success, hit.Message);
        miss.Head!.Source.Should().Be(ResponseSource.CacheMiss);
        hit.Head!.Source.Should().Be(ResponseSource.CacheHit);
        miss.DigestChecked.Should().BeTrue();
        File.ReadAllBytes(downloads.Combine("miss.bin")).Should().Equal(content);
        File.ReadAllBytes(downloads.Combine("hit.bin")).Should().Equal(content);
        downloads.Files().Should().BeEquivalentTo("miss.bin", "hit.bin");
    }

    [Fact]
    public async Task An_empty_file_downloads_to_an_empty_output()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("empty", []);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await DownloadAsync(client, "empty", downloads.Combine("empty"), deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.Success, result.Message);
        File.ReadAllBytes(downloads.Combine("empty")).Should().BeEmpty();
        downloads.Files().Should().BeEquivalentTo("empty");
    }

    [Fact]
    public async Task A_download_replaces_an_existing_output_by_rename_not_by_writing_into_it()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(500_000, seed: 21);
        cluster.Root.Write("payload.bin", content);
        var target = downloads.Write("payload.bin", Previous);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await using var oldReader = new FileStream(target, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

        var result = await DownloadAsync(client, "payload.bin", target, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.Success, result.Message);
        File.ReadAllBytes(target).Should().Equal(content);
        using var stillOld = new MemoryStream();
        await oldReader.CopyToAsync(stillOld, deadline.Token);
        stillOld.ToArray().Should().Equal(Previous, "a reader of the old file keeps the old inode: the new file was renamed over it");
        downloads.Files().Should().BeEquivalentTo("payload.bin");
    }

    [Fact]
    public async Task A_missing_file_exits_NotFound_and_leaves_the_output_untouched()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var target = downloads.Write("missing.bin", Previous);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await DownloadAsync(client, "missing.bin", target, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.NotFound);
        File.ReadAllBytes(target).Should().Equal(Previous);
        downloads.Files().Should().BeEquivalentTo("missing.bin");
    }

    [Fact]
    public async Task A_name_the_server_refuses_exits_Refused_and_leaves_the_output_untouched()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var outside = new TempDirectory("fileproxy-outside");
        using var downloads = new TempDirectory("fileproxy-out");
        File.CreateSymbolicLink(cluster.Root.Combine("escape"), outside.Write("secret", "secret"u8.ToArray()));
        var target = downloads.Write("escape", Previous);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await DownloadAsync(client, "escape", target, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.Refused, result.Message);
        File.ReadAllBytes(target).Should().Equal(Previous);
        downloads.Files().Should().BeEquivalentTo("escape");
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task A_transfer_cut_mid_body_exits_NetworkError_and_leaves_the_output_untouched(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: faults.Wrap);
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("cut.bin", Fetch.RandomBytes(3 * 1024 * 1024, seed: 22));
        var target = downloads.Write("cut.bin", Previous);
        faults.CutBodiesAfter(1_500_000);
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var result = await DownloadAsync(client, "cut.bin", target, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.NetworkError, result.Message);
        faults.BodiesCut.Should().Be(1);
        File.ReadAllBytes(target).Should().Equal(Previous);
        downloads.Files().Should().BeEquivalentTo(["cut.bin"], "the partial temporary file is deleted");
    }

    [Fact]
    public async Task A_miss_with_the_origin_down_exits_NetworkError_and_creates_no_output()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("down.bin", Fetch.RandomBytes(1_000, seed: 23));
        await cluster.StopOriginAsync();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await DownloadAsync(client, "down.bin", downloads.Combine("down.bin"), deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.NetworkError, result.Message);
        result.Head!.Status.Should().Be(StatusCode.UpstreamUnavailable);
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task A_range_download_writes_only_the_range_and_skips_the_digest()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(200_000, seed: 24);
        cluster.Root.Write("ranged.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await Download.ToPathAsync(client, SafeName.Create("ranged.bin"), downloads.Combine("part"), 1_000, 70_000, null, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.Success, result.Message);
        result.DigestChecked.Should().BeFalse();
        File.ReadAllBytes(downloads.Combine("part")).Should().Equal(content.AsSpan(1_000, 70_000).ToArray());
    }

    private static Task<DownloadResult> DownloadAsync(Protocol.Client.FileClient client, string name, string target,
        CancellationToken cancellationToken) =>
        Download.ToPathAsync(client, SafeName.Create(name), target, 0, ProtocolLimits.ToEnd, null, cancellationToken);
}
