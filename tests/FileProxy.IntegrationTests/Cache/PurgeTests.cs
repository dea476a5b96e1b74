using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class PurgeTests(ITestOutputHelper output)
{
    private static CacheOptions PurgeAllowed(CacheOptions options) => options with { AllowPurge = true };

    [Fact]
    public async Task Purge_is_refused_when_the_proxy_does_not_allow_it_and_the_entry_stays()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(50_000, seed: 1);
        cluster.Root.Write("keep.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "keep.bin", deadline.Token);

        var purge = await client.PurgeAsync("keep.bin", deadline.Token);
        var after = await Fetch.GetAsync(client, "keep.bin", deadline.Token);

        purge.Status.Should().Be(StatusCode.Forbidden);
        after.Head.Source.Should().Be(ResponseSource.CacheHit);
        after.Body.Should().Equal(content);
    }

    [Fact]
    public async Task Purge_removes_the_entry_and_its_files_and_the_next_get_is_a_miss()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, PurgeAllowed, origin.Wrap);
        var content = Fetch.RandomBytes(50_000, seed: 2);
        cluster.Root.Write("drop.bin", content);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "drop.bin", deadline.Token);

        var purge = await client.PurgeAsync("drop.bin", deadline.Token);
        await Poll.UntilAsync(() => view.EntryFiles.Length == 0, "the purged entry's files are deleted", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        var after = await Fetch.GetAsync(client, "drop.bin", deadline.Token);

        purge.Status.Should().Be(StatusCode.Ok);
        stats["entries"].Should().Be(0);
        stats["bytes_cached"].Should().Be(0);
        stats["purges"].Should().Be(1);
        after.Head.Source.Should().Be(ResponseSource.CacheMiss);
        after.Body.Should().Equal(content);
        origin.Gets("drop.bin").Should().Be(2);
    }

    [Fact]
    public async Task Purge_of_a_name_that_is_not_cached_answers_NotFound()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, PurgeAllowed);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var purge = await client.PurgeAsync("never.bin", deadline.Token);

        purge.Status.Should().Be(StatusCode.NotFound);
    }

    [Fact]
    public async Task A_reader_of_a_purged_entry_still_gets_every_byte()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, PurgeAllowed);
        var content = Fetch.RandomBytes(16 * 1024 * 1024, seed: 3);
        cluster.Root.Write("busy.bin", content);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "busy.bin", deadline.Token);
        await using var reader = await StreamingGet.StartAsync(cluster.ProxyPort, "busy.bin", deadline.Token);
        (await reader.ReadSomeAsync(deadline.Token)).Should().BePositive();

        var purge = await client.PurgeAsync("busy.bin", deadline.Token);
        var refetched = await ProxyCache.WarmAsync(cluster, client, "busy.bin", deadline.Token);
        var body = await reader.ReadToEndAsync(deadline.Token);
        await Poll.UntilAsync(() => view.DataFiles.Length == 1, "the purged copy is deleted once its reader is done", deadline.Token);

        purge.Status.Should().Be(StatusCode.Ok);
        reader.Head.Source.Should().Be(ResponseSource.CacheHit);
        body.Should().Equal(content);
        refetched.Head.Source.Should().Be(ResponseSource.CacheMiss);
        refetched.Body.Should().Equal(content);
        view.DataPathsOf("busy.bin").Should().ContainSingle();
        File.Exists(view.MetaPathOf("busy.bin")).Should().BeTrue("the new entry's metadata must survive the old copy's deletion");
    }

    [Fact]
    public async Task A_file_named_stats_is_fetched_and_cached_like_any_other()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, PurgeAllowed);
        var content = Fetch.RandomBytes(10_000, seed: 4);
        cluster.Root.Write("stats", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var miss = await ProxyCache.WarmAsync(cluster, client, "stats", deadline.Token);
        var hit = await Fetch.GetAsync(client, "stats", deadline.Token);
        var purge = await client.PurgeAsync("stats", deadline.Token);

        miss.Head.Source.Should().Be(ResponseSource.CacheMiss);
        miss.Body.Should().Equal(content);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        hit.Body.Should().Equal(content);
        purge.Status.Should().Be(StatusCode.Ok);
    }

    [Fact]
    public async Task Purge_during_a_fill_serves_its_readers_and_keeps_nothing()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var gate = new OriginGate(holdAfter: 100_000);
        await using var cluster = await Cluster.StartAsync(output, PurgeAllowed, gate.Wrap);
        var content = Fetch.RandomBytes(400_000, seed: 3);
        cluster.Root.Write("filling.bin", content);
        await using var reader = await cluster.ConnectProxyAsync(deadline.Token);
        var fetch = Fetch.GetAsync(reader, "filling.bin", deadline.Token);
        await Poll.UntilAsync(() => gate.Held == 1, "the fill is under way", deadline.Token);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var purge = await client.PurgeAsync("filling.bin", deadline.Token);
        gate.Open();
        var read = await fetch;
        await cluster.WaitForFillsAsync(deadline.Token);

        purge.Status.Should().Be(StatusCode.Ok, purge.Message);
        read.Body.Should().Equal(content);
        (await cluster.ProxyStatsAsync(deadline.Token))["entries"].Should().Be(0, "a purged fill must not commit the file back");
        new CacheDirectoryView(cluster.CacheDirectory.Path).EntryFiles.Should().BeEmpty();
        (await Fetch.GetAsync(client, "filling.bin", deadline.Token)).Head.Source.Should().Be(ResponseSource.CacheMiss);
    }
}
