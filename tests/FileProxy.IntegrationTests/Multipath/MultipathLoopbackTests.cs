using System.Net;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Server;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Multipath;

/// <summary>
/// Multipath transfers on loopback: the origin reached directly and through a fault-injecting relay (a second path),
/// or through a second server that lies. Small chunks so that every file is many chunks.
/// </summary>
public sealed class MultipathLoopbackTests(ITestOutputHelper output)
{
    private const int Size = 6 * 1024 * 1024 + 12345;

    private static readonly MultipathOptions AllPaths = new()
    {
        Mode = MultipathMode.All,
        MinChunkBytes = 256 * 1024,
        MaxChunkBytes = 256 * 1024,
        SmallFileBytes = 512 * 1024,
    };

    [Fact]
    public async Task Two_subflows_fetch_a_file_byte_exact_and_both_carry_data()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 80);
        cluster.Root.Write("dir/two.bin", content);
        await using var relay = new Relay(OriginEndPoint(cluster));
        List<long> marks = [];

        var (result, bytes) = await FetchAsync([OriginEndPoint(cluster), relay.EndPoint], "dir/two.bin", AllPaths, marks.Add, deadline.Token);

        bytes.Should().Equal(content);
        result.Digest.Should().Be(ContentDigestOf(content));
        result.SubflowsCarrying.Should().Be(2);
        result.Subflows.Sum(s => s.Bytes).Should().Be(Size);
        marks.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        marks.Last().Should().Be(Size);
    }

    [Fact]
    public async Task A_path_that_dies_mid_transfer_gives_its_chunks_to_the_other()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 81);
        cluster.Root.Write("dies.bin", content);
        await using var relay = new Relay(OriginEndPoint(cluster));
        relay.CutAfter(700_000); // mid-chunk, after the STAT answer and a couple of chunks

        var (result, bytes) = await FetchAsync([OriginEndPoint(cluster), relay.EndPoint], "dies.bin", AllPaths, null, deadline.Token);

        bytes.Should().Equal(content);
        result.Digest.Should().Be(ContentDigestOf(content));
        result.Subflows[1].Failure.Should().NotBeNull("the relay reset the second path");
        result.Subflows[0].Bytes.Should().BeGreaterThan(Size / 2);
    }

    [Fact]
    public async Task A_path_that_goes_silent_does_not_hold_up_the_end()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 82);
        cluster.Root.Write("silent.bin", content);
        await using var relay = new Relay(OriginEndPoint(cluster));
        var options = AllPaths with { StallTimeout = TimeSpan.FromMinutes(5) };
        await using var fetcher = await ConnectAsync([OriginEndPoint(cluster), relay.EndPoint], options, deadline.Token);
        var head = await fetcher.HeadAsync("silent.bin", deadline.Token);
        relay.Freeze();

        using var downloads = new TempDirectory("fileproxy-out");
        using var file = File.OpenHandle(downloads.Combine("silent.bin"), FileMode.CreateNew, FileAccess.ReadWrite);
        var result = await fetcher.FetchAsync("silent.bin", head.File!, file, null, deadline.Token);

        result.Digest.Should().Be(ContentDigestOf(content), "the chunks asked of the silent path were fetched again over the other");
        result.Subflows[1].Bytes.Should().Be(0);
    }

    [Fact]
    public async Task Addresses_of_different_servers_are_refused()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var one = await Cluster.StartAsync(output);
        await using var other = await Cluster.StartAsync(output);
        one.Root.Write("same-name.bin", Fetch.RandomBytes(2_000_000, seed: 83));
        other.Root.Write("same-name.bin", Fetch.RandomBytes(2_000_000, seed: 84));
        await using var fetcher = await ConnectAsync([OriginEndPoint(one), OriginEndPoint(other)], AllPaths, deadline.Token);

        var head = async () => await fetcher.HeadAsync("same-name.bin", deadline.Token);

        (await head.Should().ThrowAsync<MultipathException>()).Which.Message.Should().Contain("do not serve the same file");
    }

    [Theory]
    [InlineData(Lie.ShiftedRange)]
    [InlineData(Lie.ShortRange)]
    public async Task A_peer_answering_a_chunk_with_the_wrong_range_ends_the_transfer(Lie lie)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("lied.bin", Fetch.RandomBytes(Size, seed: 85));
        // Both paths lie, so the lie is met whichever subflow a chunk lands on (an honest path on a fast loopback
        // could otherwise take every chunk first).
        await using var liar = StartLiar(cluster, lie);
        await using var otherLiar = StartLiar(cluster, lie);
        await using var fetcher = await ConnectAsync([liar.LocalEndPoint, otherLiar.LocalEndPoint], AllPaths, deadline.Token);
        var head = await fetcher.HeadAsync("lied.bin", deadline.Token);
        using var downloads = new TempDirectory("fileproxy-out");
        using var file = File.OpenHandle(downloads.Combine("lied.bin"), FileMode.CreateNew, FileAccess.ReadWrite);

        var fetch = async () => await fetcher.FetchAsync("lied.bin", head.File!, file, null, deadline.Token);

        var error = (await fetch.Should().ThrowAsync<MultipathException>()).Which;
        error.Should().NotBeOfType<Protocol.Client.Multipath.FileChangedException>();
        error.Message.Should().Contain("answered a request for bytes");
    }

    [Fact]
    public async Task The_client_leaves_nothing_behind_when_a_peer_answers_the_wrong_range()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("lied.bin", Fetch.RandomBytes(Size, seed: 86));
        await using var liar = StartLiar(cluster, Lie.ShiftedRange);
        await using var otherLiar = StartLiar(cluster, Lie.ShiftedRange);
        using var downloads = new TempDirectory("fileproxy-out");

        var (result, transfer) = await MultipathDownload.ToFileAsync(Peers(liar.LocalEndPoint, otherLiar.LocalEndPoint), AllPaths,
            SafeName.Create("lied.bin"), downloads.Combine("lied.bin"), null, DownloadOptions.Once, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.NetworkError);
        result.Message.Should().Contain("answered a request for bytes");
        transfer.Should().BeNull();
        downloads.Files().Should().BeEmpty("nothing partial is left, under the output name or beside it");
    }

    [Fact]
    public async Task The_client_starts_over_once_when_the_file_changes_then_fails()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("changes.bin", Fetch.RandomBytes(Size, seed: 87));
        // Both paths lie: with one honest path, a fast loopback could fetch every chunk over it before the liar's
        // first answer, and the file would (rightly) arrive whole.
        await using var liar = StartLiar(cluster, Lie.OtherVersion);
        await using var otherLiar = StartLiar(cluster, Lie.OtherVersion);
        using var downloads = new TempDirectory("fileproxy-out");

        var (result, _) = await MultipathDownload.ToFileAsync(Peers(liar.LocalEndPoint, otherLiar.LocalEndPoint), AllPaths,
            SafeName.Create("changes.bin"), downloads.Combine("changes.bin"), null, DownloadOptions.Once, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.NetworkError);
        result.Message.Should().Contain("file changed").And.Contain("changed again after starting over");
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task The_client_renames_a_verified_multipath_download_into_place()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 88);
        cluster.Root.Write("whole.bin", content);
        await using var relay = new Relay(OriginEndPoint(cluster));
        using var downloads = new TempDirectory("fileproxy-out");

        var (result, transfer) = await MultipathDownload.ToFileAsync(Peers(OriginEndPoint(cluster), relay.EndPoint),
            AllPaths with { Mode = MultipathMode.Adaptive }, SafeName.Create("whole.bin"), downloads.Combine("whole.bin"), null, DownloadOptions.Once, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.Success, result.Message);
        result.DigestChecked.Should().BeTrue();
        transfer!.Subflows.Should().HaveCount(2);
        File.ReadAllBytes(downloads.Combine("whole.bin")).Should().Equal(content);
        downloads.Files().Should().BeEquivalentTo("whole.bin");
    }

    [Fact]
    public async Task The_client_tries_a_multipath_download_again_after_a_passing_failure()
    {
        // Through a proxy whose origin is down: UpstreamUnavailable, a passing failure. The origin comes back when
        // the client says it will retry, and the retry gets the file.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 89);
        cluster.Root.Write("later.bin", content);
        await cluster.StopOriginAsync();
        using var downloads = new TempDirectory("fileproxy-out");
        var notices = new List<string>();
        var tries = new DownloadOptions
        {
            Retry = new RetryPolicy { Retries = 2, BaseDelay = TimeSpan.FromMilliseconds(10) },
            Notice = line =>
            {
                notices.Add(line);
                if (notices.Count == 1)
                {
                    cluster.StartOrigin();
                }
            },
        };
        var proxy = new IPEndPoint(IPAddress.Loopback, cluster.ProxyPort);

        var (result, transfer) = await MultipathDownload.ToFileAsync(Peers(proxy, proxy), AllPaths,
            SafeName.Create("later.bin"), downloads.Combine("later.bin"), null, tries, deadline.Token);

        result.ExitCode.Should().Be(ExitCodes.Success, result.Message);
        result.Attempts.Should().Be(2);
        notices.Should().ContainSingle().Which.Should().Contain("UpstreamUnavailable").And.Contain("retry 1 of 2");
        transfer!.Subflows.Should().HaveCount(2);
        File.ReadAllBytes(downloads.Combine("later.bin")).Should().Equal(content);
    }

    private static IPEndPoint OriginEndPoint(Cluster cluster) => new(IPAddress.Loopback, cluster.OriginPort);

    private static PeerAddress[] Peers(params IPEndPoint[] endPoints) =>
        [.. endPoints.Select(e => new PeerAddress(e.Address.ToString(), e.Port))];

    private static Protocol.Wire.ContentDigest ContentDigestOf(byte[] content) => Protocol.Wire.ContentDigest.Of(content);

    private ProtocolServer StartLiar(Cluster cluster, Lie lie)
    {
        var log = TestLog.For(output, "liar");
        var server = new ProtocolServer(new LyingSource(new DirectorySource(cluster.Root.Path, log), lie),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log);
        server.Start();
        return server;
    }

    private Task<MultipathFetcher> ConnectAsync(IPEndPoint[] addresses, MultipathOptions options, CancellationToken cancellationToken) =>
        MultipathFetcher.ConnectAsync([.. addresses.Select(a => (a.Address.ToString(), a.Port))], options, TestLog.For(output, "client"), cancellationToken);

    private async Task<(MultipathResult Result, byte[] Bytes)> FetchAsync(IPEndPoint[] addresses, string name, MultipathOptions options,
        Action<long>? written, CancellationToken cancellationToken)
    {
        await using var fetcher = await ConnectAsync(addresses, options, cancellationToken);
        var head = await fetcher.HeadAsync(name, cancellationToken);
        using var downloads = new TempDirectory("fileproxy-out");
        var path = downloads.Combine("out.bin");
        MultipathResult result;
        using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            result = await fetcher.FetchAsync(name, head.File!, file, written, cancellationToken);
        }
        return (result, File.ReadAllBytes(path));
    }
}
