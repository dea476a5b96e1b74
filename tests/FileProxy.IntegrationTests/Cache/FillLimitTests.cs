using System.Net;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

/// <summary>
/// Fills are bounded: beyond the cap they wait holding nothing; concurrent fills reserve disk space so they cannot
/// together overrun the disk; a disk that fills mid-fill, or a commit that fails, costs the cache its copy but never
/// a reader its file; a file that does not fit costs one upstream GET.
/// </summary>
public sealed class FillLimitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Distinct_cold_names_beyond_the_fill_cap_wait_their_turn_without_an_upstream_connection()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var gate = new OriginGate(holdAfter: 100_000);
        await using var cluster = await Cluster.StartAsync(output, options => options with { MaxConcurrentFills = 3 }, gate.Wrap);
        var contents = Enumerable.Range(0, 8).Select(i => cluster.Root.Write($"f{i}.bin", Fetch.RandomBytes(300_000, seed: 80 + i))).ToArray();

        var fetches = Enumerable.Range(0, 8).Select(async i =>
        {
            await using var client = await cluster.ConnectProxyAsync(deadline.Token);
            return await Fetch.GetAsync(client, $"f{i}.bin", deadline.Token);
        }).ToArray();
        await Poll.UntilAsync(async () => gate.Held == 3 && (await cluster.ProxyStatsAsync(deadline.Token))["fills_queued"] == 5,
            "3 fills run (stalled at the origin) and 5 wait", deadline.Token);

        gate.Gets.Should().Be(3, "a waiting fill has not asked the origin yet");
        gate.Open();
        var results = await Task.WhenAll(fetches);
        for (var i = 0; i < 8; i++)
        {
            results[i].Body.Should().Equal(File.ReadAllBytes(contents[i]));
        }
        gate.Gets.Should().Be(8);
    }

    [Fact]
    public async Task Pass_through_relays_hold_upstream_slots_and_beyond_the_cap_wait_their_turn()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var gate = new OriginGate(holdAfter: 100_000);
        await using var cluster = await Cluster.StartAsync(output, options => options with { MaxConcurrentFills = 2, MaxBytes = 10_000 }, gate.Wrap);
        var content = Fetch.RandomBytes(300_000, seed: 97);
        cluster.Root.Write("big.bin", content);

        var fetches = Enumerable.Range(0, 3).Select(async _ =>
        {
            await using var client = await cluster.ConnectProxyAsync(deadline.Token);
            return await Fetch.GetAsync(client, "big.bin", deadline.Token);
        }).ToArray();
        await Poll.UntilAsync(async () =>
        {
            var stats = await cluster.ProxyStatsAsync(deadline.Token);
            return gate.Held == 2 && stats["upstream_queued"] + stats["fills_queued"] == 1;
        }, "2 relays run (stalled at the origin) and the third waits for a slot", deadline.Token);

        gate.Gets.Should().Be(2, "a relay beyond --max-fills waits before it connects to the origin");
        gate.Open();
        foreach (var result in await Task.WhenAll(fetches))
        {
            result.Head.Source.Should().Be(ResponseSource.PassThrough);
            result.Body.Should().Equal(content);
        }
        gate.Gets.Should().Be(3);
    }

    [Fact]
    public async Task A_range_of_a_file_larger_than_the_cache_does_not_wait_for_the_slot_its_own_fill_holds()
    {
        // One upstream slot, taken by the fill's probe, whose answer waits for a reader of the whole file: a range
        // reader needs a slot of its own, and must not keep the probe's answer (and so its slot) while it waits.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output, options => options with { MaxConcurrentFills = 1, MaxBytes = 10_000 });
        var content = Fetch.RandomBytes(3 * 1024 * 1024, seed: 91);
        cluster.Root.Write("huge.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var part = await Fetch.GetAsync(client, "huge.bin", deadline.Token, offset: 2_000_000, length: 100_000);
        var whole = await Fetch.GetAsync(client, "huge.bin", deadline.Token);

        part.Head.Source.Should().Be(ResponseSource.PassThrough);
        part.Body.Should().Equal(content[2_000_000..2_100_000]);
        whole.Head.Source.Should().Be(ResponseSource.PassThrough);
        whole.Body.Should().Equal(content);
    }

    [Fact]
    public async Task A_file_larger_than_the_cache_costs_one_upstream_get()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var gate = new OriginGate(holdAfter: long.MaxValue);
        await using var cluster = await Cluster.StartAsync(output, options => options with { MaxBytes = 10_000 }, gate.Wrap);
        var content = Fetch.RandomBytes(200_000, seed: 90);
        cluster.Root.Write("big.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await Fetch.GetAsync(client, "big.bin", deadline.Token);

        result.Head.Source.Should().Be(ResponseSource.PassThrough);
        result.Body.Should().Equal(content);
        gate.Gets.Should().Be(1, "the probe's own answer is handed to the reader");
    }

    [SkippableFact]
    public async Task Concurrent_fills_reserve_disk_space_and_every_client_gets_its_file()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var disk = Tmpfs.TryMount("16m", out var whyNot);
        Skip.If(disk is null, whyNot);
        var gate = new OriginGate(holdAfter: 1_000_000);
        await using var cluster = await Cluster.StartAsync(output, options => options with { Directory = disk.Path }, gate.Wrap);
        var contents = Enumerable.Range(0, 4).Select(i => Fetch.RandomBytes(6_000_000, seed: 91 + i)).ToArray();
        for (var i = 0; i < 4; i++)
        {
            cluster.Root.Write($"six{i}.bin", contents[i]);
        }

        var fetches = Enumerable.Range(0, 4).Select(async i =>
        {
            await using var client = await cluster.ConnectProxyAsync(deadline.Token);
            return await Fetch.GetAsync(client, $"six{i}.bin", deadline.Token);
        }).ToArray();
        await Poll.UntilAsync(async () => gate.Held + (await cluster.ProxyStatsAsync(deadline.Token))["pass_through"] >= 4,
            "every fill decided to cache or pass through", deadline.Token);
        gate.Open();
        var results = await Task.WhenAll(fetches);

        for (var i = 0; i < 4; i++)
        {
            results[i].Head.IsOk.Should().BeTrue(results[i].Head.Message);
            results[i].Body.Should().Equal(contents[i]);
        }
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["entries"].Should().BeInRange(1, 2, "two 6 MB files fit in 16 MiB");
        stats["pass_through"].Should().Be(4 - stats["entries"]);
    }

    [SkippableFact]
    public async Task A_disk_that_fills_mid_fill_costs_the_copy_not_the_readers()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var disk = Tmpfs.TryMount("16m", out var whyNot);
        Skip.If(disk is null, whyNot);
        var gate = new OriginGate(holdAfter: 1_000_000);
        await using var cluster = await Cluster.StartAsync(output, options => options with { Directory = disk.Path }, gate.Wrap);
        var content = Fetch.RandomBytes(8_000_000, seed: 95);
        cluster.Root.Write("eight.bin", content);

        var fetches = Enumerable.Range(0, 2).Select(async _ =>
        {
            await using var client = await cluster.ConnectProxyAsync(deadline.Token);
            return await Fetch.GetAsync(client, "eight.bin", deadline.Token);
        }).ToArray();
        // The origin held after its first megabyte says nothing of the proxy: it may not have read the head yet, and
        // a disk filled before it decides whether the file fits makes the fill a pass-through (fills_abandoned 0).
        // Its cache file is made once it has decided.
        await Poll.UntilAsync(() => gate.Held == 1 && new CacheDirectoryView(disk.Path).TempFiles.Length == 1,
            "the fill has its cache file and is stalled after its first megabyte", deadline.Token);
        disk.FillUp();
        gate.Open();
        var results = await Task.WhenAll(fetches);

        foreach (var result in results)
        {
            result.Head.IsOk.Should().BeTrue(result.Head.Message);
            result.Body.Should().Equal(content);
        }
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["fills_abandoned"].Should().Be(1);
        stats["entries"].Should().Be(0);
        new CacheDirectoryView(disk.Path).TempFiles.Should().BeEmpty();
        new CacheDirectoryView(disk.Path).EntryFiles.Should().BeEmpty();
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_fill_whose_cache_file_the_disk_refuses_passes_the_file_through_instead_of_failing_its_readers(bool multipath)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var disk = Tmpfs.TryMount("64m", out var whyNot, inodes: 64);
        Skip.If(disk is null, whyNot);
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(3_000_000, seed: 98);
        cluster.Root.Write("refused.bin", content);
        var options = new CacheOptions
        {
            Directory = disk.Path,
            Multipath = multipath ? new UpstreamMultipath([("127.0.0.1", cluster.OriginPort), ("127.0.0.1", cluster.OriginPort)],
                new MultipathOptions { Mode = MultipathMode.All, MinChunkBytes = 256 * 1024, MaxChunkBytes = 256 * 1024 }) : null,
        };
        var (server, cache) = ProxyServer.Create("127.0.0.1", cluster.OriginPort, options,
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log: TestLog.For(output, "disk-proxy"));
        server.Start();
        try
        {
            disk.ExhaustInodes(); // bytes to spare, so the space check passes; creating the file fails with ENOSPC
            await using var client = await FileClient.ConnectAsync("127.0.0.1", server.LocalEndPoint.Port, cancellationToken: deadline.Token);

            var result = await Fetch.GetAsync(client, "refused.bin", deadline.Token);

            result.Head.IsOk.Should().BeTrue(result.Head.Message);
            result.Head.Source.Should().Be(ResponseSource.PassThrough);
            result.Body.Should().Equal(content);
            cache.Counters.Single(c => c.Key == "entries").Value.Should().Be(0);
            new CacheDirectoryView(disk.Path).TempFiles.Should().BeEmpty();
        }
        finally
        {
            await server.DisposeAsync();
            await cache.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_commit_that_fails_serves_the_file_and_leaves_nothing_behind()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(500_000, seed: 96);
        cluster.Root.Write("nometa.bin", content);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        Directory.CreateDirectory(view.MetaPathOf("nometa.bin")); // the metadata cannot take its name
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await Fetch.GetAsync(client, "nometa.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);

        result.Body.Should().Equal(content);
        (await cluster.ProxyStatsAsync(deadline.Token))["entries"].Should().Be(0);
        view.EntryFiles.Should().BeEmpty("the data file and the metadata's temporary file were rolled back");
        view.TempFiles.Should().BeEmpty();
    }
}
