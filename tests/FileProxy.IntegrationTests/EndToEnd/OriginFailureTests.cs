using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>The origin going away, before or during a transfer: hits go on, misses fail with a clear answer,
/// a cut body is never passed off as a whole one, and nothing half-fetched stays in the cache.</summary>
public sealed class OriginFailureTests(ITestOutputHelper output)
{

    [Fact]
    public async Task A_cached_file_is_still_served_with_the_origin_stopped()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(200_000, seed: 7);
        cluster.Root.Write("kept.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var miss = await Fetch.GetAsync(client, "kept.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);

        await cluster.StopOriginAsync();
        var hit = await Fetch.GetAsync(client, "kept.bin", deadline.Token);

        miss.Head.Source.Should().Be(ResponseSource.CacheMiss);
        hit.Head.Status.Should().Be(StatusCode.Ok, hit.Head.Message);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        hit.Body.Should().Equal(content);
    }

    [Fact]
    public async Task A_miss_with_the_origin_stopped_is_UpstreamUnavailable_and_leaves_nothing_in_the_cache()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("unreached.bin", Fetch.RandomBytes(100_000, seed: 8));
        await cluster.StopOriginAsync();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var miss = await Fetch.GetAsync(client, "unreached.bin", deadline.Token);
        var stats = await client.StatsAsync(deadline.Token);

        miss.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        miss.Head.Message.Should().Contain("origin", "the client is told that the origin, not the file, is the problem");
        stats.Status.Should().Be(StatusCode.Ok, "the failed miss was an answer; the connection goes on");
        await Poll.UntilAsync(() => cluster.FilesInCache().Count == 0, "the failed fill's files are gone", deadline.Token);
        cluster.FilesInCache().Should().BeEmpty();
    }

    [Fact]
    public async Task A_miss_that_failed_while_the_origin_was_down_succeeds_once_it_is_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(100_000, seed: 9);
        cluster.Root.Write("later.bin", content);
        await cluster.StopOriginAsync();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var failed = await Fetch.GetAsync(client, "later.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);

        cluster.RestartOrigin();
        var miss = await Fetch.GetAsync(client, "later.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var hit = await Fetch.GetAsync(client, "later.bin", deadline.Token);

        failed.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        miss.Head.Source.Should().Be(ResponseSource.CacheMiss, "the failure was not cached");
        miss.Body.Should().Equal(content);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        hit.Body.Should().Equal(content);
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task The_origin_dying_mid_transfer_is_an_UpstreamException_never_a_short_body(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: faults.Wrap);
        var content = Fetch.RandomBytes(4 * 1024 * 1024, seed: 10);
        cluster.Root.Write("cut.bin", content);
        faults.CutBodiesAfter(1_000_003);
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        await using var response = await client.GetAsync(new GetRequest("cut.bin"), deadline.Token);
        var received = 0L;
        var buffer = new byte[256 * 1024];
        var read = async () =>
        {
            int count;
            while ((count = await response.ReadAsync(buffer, deadline.Token)) > 0)
            {
                received += count;
            }
        };

        response.Head.Status.Should().Be(StatusCode.Ok);
        response.Head.Length.Should().Be(content.Length);
        await read.Should().ThrowAsync<UpstreamException>();
        received.Should().BeLessThan(content.Length);
        faults.BodiesCut.Should().Be(1);
        client.IsReusable.Should().BeFalse();
    }

    [Fact]
    public async Task After_the_origin_died_mid_transfer_the_proxy_cached_nothing_and_the_next_request_succeeds()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: faults.Wrap);
        var content = Fetch.RandomBytes(3 * 1024 * 1024 + 17, seed: 11);
        cluster.Root.Write("cut.bin", content);
        faults.CutBodiesAfter(2_000_000);
        await using (var broken = await cluster.ConnectProxyAsync(deadline.Token))
        {
            var cut = () => Fetch.GetAsync(broken, "cut.bin", deadline.Token);
            await cut.Should().ThrowAsync<UpstreamException>();
        }
        await Poll.UntilAsync(() => cluster.FilesInCache().Count == 0, "the failed fill's files are gone", deadline.Token);
        var afterFailure = cluster.FilesInCache();
        var statsAfterFailure = await cluster.ProxyStatsAsync(deadline.Token);

        faults.LetThrough();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var miss = await Fetch.GetAsync(client, "cut.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var hit = await Fetch.GetAsync(client, "cut.bin", deadline.Token);

        afterFailure.Should().BeEmpty("a partly fetched file must not stay in the cache directory");
        statsAfterFailure["entries"].Should().Be(0);
        statsAfterFailure["upstream_failures"].Should().Be(1);
        miss.Head.Source.Should().Be(ResponseSource.CacheMiss, "the cut fill was not committed");
        miss.Body.Should().Equal(content);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        hit.Body.Should().Equal(content);
    }
}
