using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

/// <summary>Small entries (12 KiB or less) are also held in memory, so that their hits read no file.</summary>
public sealed class InMemoryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Small_entries_are_served_from_memory_whole_and_in_ranges_and_large_ones_are_not_held()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var small = Fetch.RandomBytes(4096, seed: 1);
        var tiny = Fetch.RandomBytes(100, seed: 2);
        var large = Fetch.RandomBytes(70_000, seed: 3);
        cluster.Root.Write("small.bin", small);
        cluster.Root.Write("tiny.bin", tiny);
        cluster.Root.Write("large.bin", large);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        foreach (var name in new[] { "small.bin", "tiny.bin", "large.bin" })
        {
            await ProxyCache.WarmAsync(cluster, client, name, deadline.Token);
        }

        // With the cache's files overwritten under it, only a copy in memory still has the right bytes.
        var whole = await Fetch.GetAsync(client, "small.bin", deadline.Token);
        var range = await Fetch.GetAsync(client, "small.bin", deadline.Token, offset: 1000, length: 500);
        var tinyHit = await Fetch.GetAsync(client, "tiny.bin", deadline.Token);
        var largeHit = await Fetch.GetAsync(client, "large.bin", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        foreach (var file in view.DataFiles)
        {
            File.WriteAllBytes(file, new byte[new FileInfo(file).Length]);
        }
        var fromMemory = await Fetch.GetAsync(client, "small.bin", deadline.Token);
        var tinyFromMemory = await Fetch.GetAsync(client, "tiny.bin", deadline.Token);

        whole.Head.Source.Should().Be(ResponseSource.CacheHit);
        whole.Body.Should().Equal(small);
        range.Body.Should().Equal(small[1000..1500]);
        tinyHit.Body.Should().Equal(tiny);
        largeHit.Head.Source.Should().Be(ResponseSource.CacheHit);
        largeHit.Body.Should().Equal(large);
        stats["bytes_in_memory"].Should().Be(small.Length + tiny.Length, "the first hits copied the two small entries");
        fromMemory.Body.Should().Equal(small);
        tinyFromMemory.Body.Should().Equal(tiny);
    }

    [Fact]
    public async Task A_changed_or_purged_small_entry_is_never_served_from_its_old_copy_and_gives_its_room_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output,
            options => options with { RevalidateAfter = TimeSpan.Zero, AllowPurge = true });
        var first = Fetch.RandomBytes(4096, seed: 4);
        var second = Fetch.RandomBytes(4096, seed: 5);
        var other = Fetch.RandomBytes(2000, seed: 6);
        cluster.Root.Write("doc.bin", first);
        cluster.Root.Write("other.bin", other);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "doc.bin", deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "other.bin", deadline.Token);
        var held = (await Fetch.GetAsync(client, "doc.bin", deadline.Token)).Body;
        await Fetch.GetAsync(client, "other.bin", deadline.Token);
        var before = await cluster.ProxyStatsAsync(deadline.Token);

        var temp = cluster.Root.Write("doc.bin.new", second);
        File.Move(temp, cluster.Root.Combine("doc.bin"), overwrite: true);
        var afterChange = await Fetch.GetAsync(client, "doc.bin", deadline.Token);
        var changedStats = await cluster.ProxyStatsAsync(deadline.Token);
        var hitAfterChange = await Fetch.GetAsync(client, "doc.bin", deadline.Token);
        var purge = await client.PurgeAsync("doc.bin", deadline.Token);
        var purgedStats = await cluster.ProxyStatsAsync(deadline.Token);

        held.Should().Equal(first);
        before["bytes_in_memory"].Should().Be(first.Length + other.Length);
        afterChange.Head.Source.Should().Be(ResponseSource.CacheMiss);
        afterChange.Body.Should().Equal(second);
        changedStats["bytes_in_memory"].Should().Be(other.Length, "the old version's copy left with its entry");
        hitAfterChange.Head.Source.Should().Be(ResponseSource.CacheHit);
        hitAfterChange.Body.Should().Equal(second);
        purge.IsOk.Should().BeTrue(purge.Message);
        purgedStats["bytes_in_memory"].Should().Be(other.Length);
    }
}
