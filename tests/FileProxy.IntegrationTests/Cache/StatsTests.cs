using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class StatsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Counters_add_up_after_misses_hits_coalesced_requests_and_a_missing_file()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        var small = Fetch.RandomBytes(70_000, seed: 1);
        var large = Fetch.RandomBytes(3 * 1024 * 1024, seed: 2);
        cluster.Root.Write("small.bin", small);
        cluster.Root.Write("large.bin", large);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var sources = new List<ResponseSource>();
        for (var i = 0; i < 3; i++)
        {
            sources.Add((await ProxyCache.WarmAsync(cluster, client, "small.bin", deadline.Token)).Head.Source);
        }
        var hold = origin.Hold("large.bin", 1024 * 1024);
        var followers = new List<StreamingGet>();
        for (var i = 0; i < 3; i++)
        {
            followers.Add(await StreamingGet.StartAsync(cluster.ProxyPort, "large.bin", deadline.Token));
        }
        hold.Release();
        foreach (var follower in followers)
        {
            await using (follower)
            {
                sources.Add(follower.Head.Source);
                (await follower.ReadToEndAsync(deadline.Token)).Should().Equal(large);
            }
        }
        var missing = await ProxyCache.WarmAsync(cluster, client, "missing.bin", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        missing.Head.Status.Should().Be(StatusCode.NotFound);
        sources.Should().Equal(ResponseSource.CacheMiss, ResponseSource.CacheHit, ResponseSource.CacheHit,
            ResponseSource.CacheMiss, ResponseSource.CacheCoalesced, ResponseSource.CacheCoalesced);
        stats["cache_hits"].Should().Be(2);
        stats["cache_misses"].Should().Be(3, "small.bin, large.bin and missing.bin each started a fetch");
        stats["coalesced_requests"].Should().Be(2);
        stats["cache_stale_hits"].Should().Be(0);
        (stats["cache_hits"] + stats["cache_misses"] + stats["coalesced_requests"]).Should().Be(7, "that is every GET sent");
        stats["upstream_fetches"].Should().Be(stats["cache_misses"]);
        stats["bytes_fetched"].Should().Be(small.Length + large.Length);
        stats["fills_in_progress"].Should().Be(0);
        stats["entries"].Should().Be(2);
        stats["bytes_cached"].Should().Be(small.Length + large.Length);
        stats["bytes_cached"].Should().Be(view.DataBytes);
        stats["cache_max_bytes"].Should().Be(-1);
        origin.Gets("large.bin").Should().Be(1);
    }
}
