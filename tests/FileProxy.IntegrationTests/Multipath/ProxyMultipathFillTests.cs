using System.Net;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Multipath;

/// <summary>The proxy's fill over two addresses of the origin (direct, and through a relay standing for a second path).</summary>
public sealed class ProxyMultipathFillTests(ITestOutputHelper output)
{
    private const int Size = 5 * 1024 * 1024 + 777;

    [Fact]
    public async Task A_miss_is_fetched_over_both_paths_verified_and_cached()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 90);
        cluster.Root.Write("fill.bin", content);
        await using var relay = new Relay(new IPEndPoint(IPAddress.Loopback, cluster.OriginPort));
        await using var proxy = await StartProxyAsync(cluster, relay);
        await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Server.LocalEndPoint.Port, cancellationToken: deadline.Token);

        var miss = await Fetch.GetAsync(client, "fill.bin", deadline.Token);
        await Poll.UntilAsync(() => proxy.Cache.Counters.Single(c => c.Key == "fills_in_progress").Value == 0, "the fill has ended", deadline.Token);
        var hit = await Fetch.GetAsync(client, "fill.bin", deadline.Token);

        miss.Body.Should().Equal(content);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit, "the verified fill was committed");
        hit.Body.Should().Equal(content);
        relay.Forwarded.Should().BeGreaterThan(256 * 1024, "the second path carried at least one chunk (how many depends on scheduling)");
    }

    [Fact]
    public async Task Later_fills_reuse_the_subflows_of_earlier_ones()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        // Two small files (one GET on the best subflow, a STAT on each) leave both subflows at a request boundary;
        // the large one is split across both. (A subflow still receiving an end-of-transfer copy when a file is
        // complete is closed instead: its stream is mid-body.)
        var small = Fetch.RandomBytes(300_000, seed: 94);
        var other = Fetch.RandomBytes(200_000, seed: 95);
        var large = Fetch.RandomBytes(Size, seed: 96);
        cluster.Root.Write("small.bin", small);
        cluster.Root.Write("other.bin", other);
        cluster.Root.Write("large.bin", large);
        await using var relay = new Relay(new IPEndPoint(IPAddress.Loopback, cluster.OriginPort));
        await using var proxy = await StartProxyAsync(cluster, relay);
        await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Server.LocalEndPoint.Port, cancellationToken: deadline.Token);

        var bodies = new List<byte[]>();
        foreach (var name in (string[])["small.bin", "other.bin", "large.bin"])
        {
            bodies.Add((await Fetch.GetAsync(client, name, deadline.Token)).Body);
            await Poll.UntilAsync(() => proxy.Cache.Counters.Single(c => c.Key == "fills_in_progress").Value == 0, $"the fill of {name} has ended", deadline.Token);
        }

        bodies.Should().Equal([small, other, large], (a, b) => a.SequenceEqual(b));
        proxy.Cache.SubflowsConnected.Should().Be(2, "one connection per origin address, kept from fill to fill (without the pool: 6)");
        relay.Forwarded.Should().BeGreaterThan(256 * 1024, "the large file went over the second path too");
    }

    [Fact]
    public async Task A_fill_completes_when_one_path_dies_mid_way()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 91);
        cluster.Root.Write("dies.bin", content);
        await using var relay = new Relay(new IPEndPoint(IPAddress.Loopback, cluster.OriginPort));
        relay.CutAfter(600_000);
        await using var proxy = await StartProxyAsync(cluster, relay);
        await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Server.LocalEndPoint.Port, cancellationToken: deadline.Token);

        var miss = await Fetch.GetAsync(client, "dies.bin", deadline.Token);

        miss.Head.IsOk.Should().BeTrue(miss.Head.Message);
        miss.Body.Should().Equal(content);
    }

    [Fact]
    public async Task A_fill_from_addresses_of_different_servers_fails_with_a_clear_error()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        await using var other = await Cluster.StartAsync(output);
        cluster.Root.Write("mixed.bin", Fetch.RandomBytes(Size, seed: 92));
        other.Root.Write("mixed.bin", Fetch.RandomBytes(Size, seed: 93));
        await using var relay = new Relay(new IPEndPoint(IPAddress.Loopback, other.OriginPort));
        await using var proxy = await StartProxyAsync(cluster, relay);
        await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Server.LocalEndPoint.Port, cancellationToken: deadline.Token);

        var answer = await Fetch.GetAsync(client, "mixed.bin", deadline.Token);

        answer.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        answer.Head.Message.Should().Contain("do not serve the same file");
    }

    private async Task<ProxyUnderTest> StartProxyAsync(Cluster cluster, Relay relay)
    {
        var cacheDirectory = new TempDirectory("fileproxy-cache");
        var options = new CacheOptions
        {
            Directory = cacheDirectory.Path,
            Fsync = false,
            Multipath = new UpstreamMultipath([("127.0.0.1", cluster.OriginPort), ("127.0.0.1", relay.EndPoint.Port)], new MultipathOptions
            {
                Mode = MultipathMode.All,
                MinChunkBytes = 256 * 1024,
                MaxChunkBytes = 256 * 1024,
                SmallFileBytes = 512 * 1024,
            }),
        };
        var (server, cache) = ProxyServer.Create("127.0.0.1", cluster.OriginPort, options,
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log: TestLog.For(output, "mp-proxy"));
        server.Start();
        await Task.CompletedTask;
        return new ProxyUnderTest(server, cache, cacheDirectory);
    }

    private sealed record ProxyUnderTest(ProtocolServer Server, CacheSource Cache, TempDirectory Directory) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            await Cache.DisposeAsync();
            Directory.Dispose();
        }
    }
}
