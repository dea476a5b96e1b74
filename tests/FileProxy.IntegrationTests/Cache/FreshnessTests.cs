using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class FreshnessTests(ITestOutputHelper output)
{
    private static CacheOptions AlwaysRevalidate(CacheOptions options) => options with { RevalidateAfter = TimeSpan.Zero };

    [Fact]
    public async Task A_file_replaced_at_the_origin_is_fetched_again_on_revalidation()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, AlwaysRevalidate);
        var first = Fetch.RandomBytes(200_000, seed: 1);
        var second = Fetch.RandomBytes(150_000, seed: 2);
        cluster.Root.Write("doc.bin", first);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "doc.bin", deadline.Token);

        ReplaceAtOrigin(cluster, "doc.bin", second);
        var afterChange = await ProxyCache.WarmAsync(cluster, client, "doc.bin", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        afterChange.Head.Source.Should().Be(ResponseSource.CacheMiss);
        afterChange.Body.Should().Equal(second);
        stats["revalidations"].Should().Be(1);
        stats["revalidations_changed"].Should().Be(1);
        stats["upstream_fetches"].Should().Be(2);
        stats["entries"].Should().Be(1);
        stats["bytes_cached"].Should().Be(second.Length);
    }

    [Fact]
    public async Task An_unchanged_file_is_confirmed_with_a_stat_and_served_from_the_cache()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, AlwaysRevalidate, origin.Wrap);
        var content = Fetch.RandomBytes(100_000, seed: 3);
        cluster.Root.Write("same.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "same.bin", deadline.Token);

        var second = await Fetch.GetAsync(client, "same.bin", deadline.Token);
        var third = await Fetch.GetAsync(client, "same.bin", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        second.Head.Source.Should().Be(ResponseSource.CacheHit);
        third.Body.Should().Equal(content);
        stats["revalidations"].Should().Be(2);
        stats["revalidations_changed"].Should().Be(0);
        origin.Stats("same.bin").Should().Be(2);
        origin.Gets("same.bin").Should().Be(1);
    }

    [Fact]
    public async Task With_the_origin_down_a_due_entry_is_served_stale_with_a_warning()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var log = new LogCapture(output);
        await using var cluster = await Cluster.StartAsync(log, AlwaysRevalidate);
        var content = Fetch.RandomBytes(100_000, seed: 4);
        cluster.Root.Write("old.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "old.bin", deadline.Token);

        await cluster.StopOriginAsync();
        var stale = await Fetch.GetAsync(client, "old.bin", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        stale.Head.Source.Should().Be(ResponseSource.StaleHit);
        stale.Body.Should().Equal(content);
        stats["cache_stale_hits"].Should().Be(1);
        log.LinesContaining("[Warning] proxy: Origin unreachable while revalidating").Should().ContainSingle()
            .Which.Should().Contain("old.bin");
    }

    [Fact]
    public async Task Requests_that_find_an_entry_due_share_one_revalidation()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, AlwaysRevalidate, origin.Wrap);
        using var releaseOrigin = origin;
        var content = Fetch.RandomBytes(100_000, seed: 9);
        cluster.Root.Write("shared.bin", content);
        await using (var client = await cluster.ConnectProxyAsync(deadline.Token))
        {
            await ProxyCache.WarmAsync(cluster, client, "shared.bin", deadline.Token);
        }
        var hold = origin.HoldStat("shared.bin");
        var baseline = (await cluster.ProxyStatsAsync(deadline.Token))["requests"];

        const int Requests = 10;
        var answers = Enumerable.Range(0, Requests).Select(async _ =>
        {
            await using var client = await cluster.ConnectProxyAsync(deadline.Token);
            return await Fetch.GetAsync(client, "shared.bin", deadline.Token);
        }).ToArray();
        await hold.Reached.WaitAsync(deadline.Token);
        // The proxy counts a request before it looks at the cache; every STATS poll is a request too.
        var polls = 0;
        await Poll.UntilAsync(async () => (await cluster.ProxyStatsAsync(deadline.Token))["requests"] - ++polls >= baseline + Requests,
            "every GET reached the proxy", deadline.Token);
        hold.Release();
        var results = await Task.WhenAll(answers);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        results.Select(r => r.Head.Source).Should().AllBeEquivalentTo(ResponseSource.CacheHit);
        results.Should().OnlyContain(r => r.Body.SequenceEqual(content));
        stats["revalidations"].Should().Be(1, "requests arriving while a revalidation runs wait for it instead of starting their own");
        origin.Stats("shared.bin").Should().Be(1);
    }

    [Fact]
    public async Task A_stale_entry_is_fresh_again_once_the_origin_is_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, AlwaysRevalidate);
        var content = Fetch.RandomBytes(100_000, seed: 5);
        cluster.Root.Write("back.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "back.bin", deadline.Token);
        await cluster.StopOriginAsync();
        (await Fetch.GetAsync(client, "back.bin", deadline.Token)).Head.Source.Should().Be(ResponseSource.StaleHit);

        cluster.RestartOrigin();
        var fresh = await Fetch.GetAsync(client, "back.bin", deadline.Token);

        fresh.Head.Source.Should().Be(ResponseSource.CacheHit);
        fresh.Body.Should().Equal(content);
    }

    [Fact]
    public async Task Without_serve_stale_an_unreachable_origin_is_answered_UpstreamUnavailable()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, options => options with
        {
            RevalidateAfter = TimeSpan.Zero,
            ServeStaleOnError = false,
        });
        cluster.Root.Write("strict.bin", Fetch.RandomBytes(100_000, seed: 6));
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "strict.bin", deadline.Token);

        await cluster.StopOriginAsync();
        var answer = await Fetch.GetAsync(client, "strict.bin", deadline.Token);

        answer.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        answer.Body.Should().BeEmpty();
    }

    [Fact]
    public async Task Without_serve_stale_no_request_gets_the_cached_copy_after_a_revalidation_failed()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        // An entry last confirmed longer ago than RevalidateAfter is revalidated on its first use after a restart.
        await using var cluster = await Cluster.StartAsync(output, options => options with
        {
            RevalidateAfter = TimeSpan.FromMinutes(10),
            ServeStaleOnError = false,
        });
        cluster.Root.Write("strict.bin", Fetch.RandomBytes(100_000, seed: 7));
        await using (var client = await cluster.ConnectProxyAsync(deadline.Token))
        {
            await ProxyCache.WarmAsync(cluster, client, "strict.bin", deadline.Token);
        }
        await cluster.StopProxyAsync();
        await cluster.StopOriginAsync();
        new CacheDirectoryView(cluster.CacheDirectory.Path).Age("strict.bin", TimeSpan.FromHours(1));
        cluster.StartProxy();
        await using var again = await cluster.ConnectProxyAsync(deadline.Token);

        var first = await Fetch.GetAsync(again, "strict.bin", deadline.Token);
        var second = await Fetch.GetAsync(again, "strict.bin", deadline.Token);

        first.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        second.Head.Status.Should().Be(StatusCode.UpstreamUnavailable,
            "ServeStaleOnError=false forbids serving the unconfirmed copy, also in the pause before the next revalidation");
    }

    [Fact]
    public async Task A_file_deleted_at_the_origin_is_dropped_from_the_cache_on_revalidation()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, AlwaysRevalidate);
        cluster.Root.Write("gone.bin", Fetch.RandomBytes(100_000, seed: 8));
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "gone.bin", deadline.Token);

        File.Delete(cluster.Root.Combine("gone.bin"));
        var answer = await Fetch.GetAsync(client, "gone.bin", deadline.Token);
        await Poll.UntilAsync(() => view.EntryFiles.Length == 0, "the dropped entry's files are deleted", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        answer.Head.Status.Should().Be(StatusCode.NotFound);
        stats["entries"].Should().Be(0);
        stats["bytes_cached"].Should().Be(0);
    }

    /// <summary>Replaces a file the way deployments do: write a new file, rename it over the old one.</summary>
    private static void ReplaceAtOrigin(Cluster cluster, string name, byte[] content)
    {
        var temp = cluster.Root.Write(name + ".new", content);
        File.Move(temp, cluster.Root.Combine(name), overwrite: true);
    }
}
