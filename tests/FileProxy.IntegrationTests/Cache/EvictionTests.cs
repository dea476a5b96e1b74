using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class EvictionTests(ITestOutputHelper output)
{
    private const long CapBytes = 1024 * 1024;

    private static CacheOptions Capped(CacheOptions options) => options with { MaxBytes = CapBytes };

    [Fact]
    public async Task The_least_recently_used_entry_goes_first_and_a_recently_read_one_survives()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, Capped);
        var files = WriteFiles(cluster, count: 6, bytes: 200_000);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        for (var i = 0; i < 5; i++)
        {
            await ProxyCache.WarmAsync(cluster, client, Name(i), deadline.Token);
        }
        (await Fetch.GetAsync(client, Name(0), deadline.Token)).Head.Source.Should().Be(ResponseSource.CacheHit);

        await ProxyCache.WarmAsync(cluster, client, Name(5), deadline.Token); // needs room: one entry must go
        var evictions = (await cluster.ProxyStatsAsync(deadline.Token))["evictions"];
        var survivor = await Fetch.GetAsync(client, Name(0), deadline.Token);
        var evicted = await Fetch.GetAsync(client, Name(1), deadline.Token);

        evictions.Should().Be(1);
        survivor.Head.Source.Should().Be(ResponseSource.CacheHit, "file 0 was read after file 1, so file 1 was older");
        survivor.Body.Should().Equal(files[0]);
        evicted.Head.Source.Should().Be(ResponseSource.CacheMiss);
        evicted.Body.Should().Equal(files[1]);
    }

    [Fact]
    public async Task The_cache_never_holds_more_than_its_cap_while_many_files_pass_through_it()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, Capped);
        var files = WriteFiles(cluster, count: 12, bytes: 300_000);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var cachedAfterEach = new List<long>();

        for (var i = 0; i < files.Length; i++)
        {
            (await ProxyCache.WarmAsync(cluster, client, Name(i), deadline.Token)).Body.Should().Equal(files[i]);
            cachedAfterEach.Add((await cluster.ProxyStatsAsync(deadline.Token))["bytes_cached"]);
        }
        await Poll.UntilAsync(() => view.DataFiles.Length == 3, "evicted files are deleted", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        cachedAfterEach.Should().OnlyContain(bytes => bytes <= CapBytes);
        stats["entries"].Should().Be(3);
        stats["evictions"].Should().Be(9);
        stats["bytes_cached"].Should().Be(view.DataBytes);
        view.MetaFiles.Should().HaveCount(3);
    }

    [Fact]
    public async Task The_most_recent_files_are_hits_and_evicted_ones_are_misses_again()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, Capped, origin.Wrap);
        var files = WriteFiles(cluster, count: 8, bytes: 300_000);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        for (var i = 0; i < files.Length; i++)
        {
            await ProxyCache.WarmAsync(cluster, client, Name(i), deadline.Token);
        }

        var recent = new[] { 7, 6, 5 };
        var recentAnswers = new List<Fetch.Result>();
        foreach (var i in recent)
        {
            recentAnswers.Add(await Fetch.GetAsync(client, Name(i), deadline.Token));
        }
        var oldest = await Fetch.GetAsync(client, Name(0), deadline.Token);

        recentAnswers.Select(a => a.Head.Source).Should().AllBeEquivalentTo(ResponseSource.CacheHit);
        recentAnswers.Select(a => a.Body).Should().Equal(recent.Select(i => files[i]), (a, b) => a.AsSpan().SequenceEqual(b));
        recent.Select(i => origin.Gets(Name(i))).Should().AllBeEquivalentTo(1);
        oldest.Head.Source.Should().Be(ResponseSource.CacheMiss);
        oldest.Body.Should().Equal(files[0]);
        origin.Gets(Name(0)).Should().Be(2);
    }

    [Fact]
    public async Task A_file_fetched_while_an_older_entry_is_being_read_stays_cached_and_the_older_one_goes_after()
    {
        const long Cap = 56L * 1024 * 1024;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output, options => options with { MaxBytes = Cap });
        // Larger than what loopback socket buffers hold, so the proxy is still sending it while the reader pauses.
        var old = Fetch.RandomBytes(48 * 1024 * 1024, seed: 20);
        var fresh = Fetch.RandomBytes(12 * 1024 * 1024, seed: 21);
        cluster.Root.Write("old.bin", old);
        cluster.Root.Write("fresh.bin", fresh);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "old.bin", deadline.Token);
        await using var reader = await StreamingGet.StartAsync(cluster.ProxyPort, "old.bin", deadline.Token);
        (await reader.ReadSomeAsync(deadline.Token)).Should().BePositive();

        await ProxyCache.WarmAsync(cluster, client, "fresh.bin", deadline.Token);
        var whileRead = await cluster.ProxyStatsAsync(deadline.Token);
        (await reader.ReadToEndAsync(deadline.Token)).Should().Equal(old);
        await Poll.UntilAsync(async () => (await cluster.ProxyStatsAsync(deadline.Token))["bytes_cached"] <= Cap,
            "the cache is back under its cap", deadline.Token);
        var again = await Fetch.GetAsync(client, "fresh.bin", deadline.Token);

        whileRead["entries"].Should().Be(2, "the entry being read cannot go, and the newest one should not go in its place");
        again.Head.Source.Should().Be(ResponseSource.CacheHit, "fresh.bin is the most recently used file");
        again.Body.Should().Equal(fresh);
    }

    [Fact]
    public async Task A_file_larger_than_the_cache_is_passed_through_byte_exact_and_not_cached()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, Capped);
        var content = Fetch.RandomBytes(3 * 1024 * 1024, seed: 9);
        cluster.Root.Write("huge.bin", content);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var first = await Fetch.GetAsync(client, "huge.bin", deadline.Token);
        var second = await Fetch.GetAsync(client, "huge.bin", deadline.Token);
        var part = await Fetch.GetAsync(client, "huge.bin", deadline.Token, offset: 2_000_000, length: 100_000);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        first.Head.Source.Should().Be(ResponseSource.PassThrough);
        first.Body.Should().Equal(content);
        second.Head.Source.Should().Be(ResponseSource.PassThrough);
        second.Body.Should().Equal(content);
        part.Head.Source.Should().Be(ResponseSource.PassThrough);
        part.Body.Should().Equal(content.AsSpan(2_000_000, 100_000).ToArray());
        stats["entries"].Should().Be(0);
        stats["bytes_cached"].Should().Be(0);
        stats["pass_through"].Should().Be(3);
        view.EntryFiles.Should().BeEmpty();
        view.TempFiles.Should().BeEmpty();
    }

    private static string Name(int i) => $"file-{i:00}.bin";

    private static byte[][] WriteFiles(Cluster cluster, int count, int bytes)
    {
        var files = new byte[count][];
        for (var i = 0; i < count; i++)
        {
            files[i] = Fetch.RandomBytes(bytes, seed: 100 + i);
            cluster.Root.Write(Name(i), files[i]);
        }
        return files;
    }
}
