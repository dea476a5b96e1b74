using System.Globalization;
using System.Net;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Tier;
using FileProxy.Proxy.Cache;
using FileProxy.Proxy.Tier;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Tier;

/// <summary>A tier of real proxies on loopback in front of one origin that counts what it is asked.</summary>
public sealed class TierTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Files_asked_in_random_order_through_random_proxies_are_fetched_from_the_origin_once_each()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var tier = new TierCluster(output, 3);
        var files = WriteFiles(tier, 60, "a");
        tier.StartAll();
        var random = new Random(11);
        var asks = files.Keys.SelectMany(name => Enumerable.Repeat(name, 3)).OrderBy(_ => random.Next()).ToList();

        await Parallel.ForEachAsync(asks, new ParallelOptions { MaxDegreeOfParallelism = 6, CancellationToken = deadline.Token },
            async (name, token) => await AskAsync(tier, Random.Shared.Next(tier.Count), name, files[name], token));

        files.Keys.Should().OnlyContain(name => tier.Origin.Gets(name) == 1, "one origin fetch serves the whole tier");
    }

    [Fact]
    public async Task Every_proxy_sends_a_name_to_the_same_owner()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var tier = new TierCluster(output, 3);
        var files = WriteFiles(tier, 30, "b");
        tier.StartAll();

        foreach (var name in files.Keys)
        {
            for (var proxy = 0; proxy < tier.Count; proxy++)
            {
                await AskAsync(tier, proxy, name, files[name], deadline.Token);
            }
        }

        files.Keys.Should().OnlyContain(name => tier.Origin.Gets(name) == 1);
        for (var proxy = 0; proxy < tier.Count; proxy++)
        {
            var owned = files.Keys.Count(name => tier.OwnerOf(name) == proxy);
            var stats = await tier.StatsAsync(proxy, deadline.Token);
            stats["tier_forwarded"].Should().Be(files.Count - owned, "proxy {0} forwards the names it does not own, once each", proxy);
            stats["tier_hop_marked_received"].Should().Be(2 * owned, "the two other proxies forward proxy {0}'s names to it", proxy);
            stats["cache_misses"].Should().Be(files.Count, "every proxy keeps a copy (the default)");
        }
    }

    [Fact]
    public async Task A_stopped_proxy_s_names_go_to_the_next_peer_and_come_back_when_it_returns()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await using var tier = new TierCluster(output, 3, downFor: TimeSpan.FromMilliseconds(300));
        var files = WriteFiles(tier, 60, "c");
        tier.StartAll();
        var names = files.Keys.ToList();
        var random = new Random(5);

        foreach (var name in names.Take(30))
        {
            await AskAsync(tier, random.Next(3), name, files[name], deadline.Token);
        }
        await tier.StopAsync(0);
        foreach (var name in names.OrderBy(_ => random.Next()))
        {
            await AskAsync(tier, 1 + random.Next(2), name, files[name], deadline.Token); // every one succeeds, verified
        }

        names.Where(name => tier.OwnerOf(name) != 0).Should().OnlyContain(name => tier.Origin.Gets(name) == 1);
        names.Where(name => tier.OwnerOf(name) == 0).Should().OnlyContain(name => tier.Origin.Gets(name) <= 2,
            "the stopped proxy's names are fetched again at most once each");
        var failures = (await tier.StatsAsync(1, deadline.Token))["tier_peer_failures"] + (await tier.StatsAsync(2, deadline.Token))["tier_peer_failures"];
        failures.Should().BeGreaterThan(0, "the stopped proxy was found down");

        tier.Start(0);
        var state = $"peer:127.0.0.1:{tier.Port(0)}:state";
        await Poll.UntilAsync(async () => (await tier.StatsAsync(1, deadline.Token))[state] == 1
            && (await tier.StatsAsync(2, deadline.Token))[state] == 1, "both peers try proxy 0 again", deadline.Token);
        var fresh = WriteFiles(tier, 40, "c-after").Where(pair => tier.OwnerOf(pair.Key) == 0).ToList();
        fresh.Should().NotBeEmpty();
        foreach (var (name, content) in fresh)
        {
            await AskAsync(tier, 1, name, content, deadline.Token);
            await AskAsync(tier, 2, name, content, deadline.Token);
        }

        fresh.Should().OnlyContain(pair => tier.Origin.Gets(pair.Key) == 1);
        (await tier.StatsAsync(0, deadline.Token))["tier_hop_marked_received"].Should().Be(2 * fresh.Count, "proxy 0 took its names back");
    }

    [Fact]
    public async Task A_forwarded_request_is_never_forwarded_again_even_when_the_peers_disagree()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        // Each proxy believes the other owns every name: without the hop mark, a miss would go round forever.
        await using var tier = new TierCluster(output, 2, (cluster, index) => new TierOptions { Peers = [cluster.Peers[1 - index]] });
        var files = WriteFiles(tier, 2, "d");
        tier.StartAll();
        var (get, stat) = (files.Keys.First(), files.Keys.Last());

        await AskAsync(tier, 0, get, files[get], deadline.Token);
        await using (var client = await tier.ConnectAsync(1, deadline.Token))
        {
            (await client.StatAsync(stat, deadline.Token)).IsOk.Should().BeTrue();
        }

        tier.Origin.Gets(get).Should().Be(1);
        tier.Origin.Stats(stat).Should().Be(1);
        var first = await tier.StatsAsync(0, deadline.Token);
        var second = await tier.StatsAsync(1, deadline.Token);
        first["tier_forwarded"].Should().Be(1, "proxy 0 forwarded the GET it was asked");
        second["tier_forwarded"].Should().Be(1, "proxy 1 forwarded the STAT it was asked, and not the GET proxy 0 sent it");
        first["tier_hop_marked_received"].Should().Be(1);
        second["tier_hop_marked_received"].Should().Be(1);
    }

    [Fact]
    public async Task A_proxy_that_keeps_no_copies_relays_the_names_of_other_peers()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var tier = new TierCluster(output, 3, keepCopies: false);
        var files = WriteFiles(tier, 20, "e");
        tier.StartAll();

        for (var round = 0; round < 2; round++)
        {
            foreach (var name in files.Keys)
            {
                for (var proxy = 0; proxy < tier.Count; proxy++)
                {
                    await AskAsync(tier, proxy, name, files[name], deadline.Token);
                }
            }
        }

        files.Keys.Should().OnlyContain(name => tier.Origin.Gets(name) == 1);
        for (var proxy = 0; proxy < tier.Count; proxy++)
        {
            var stats = await tier.StatsAsync(proxy, deadline.Token);
            stats["entries"].Should().Be(files.Keys.Count(name => tier.OwnerOf(name) == proxy), "proxy {0} keeps only its own names", proxy);
        }
    }

    [Fact]
    public async Task A_proxy_that_keeps_no_copies_relays_from_the_next_peer_when_the_owner_stops()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var tier = new TierCluster(output, 3, keepCopies: false);
        // Owners follow the proxies' random ports: with 6 names none was proxy 0's in about 9 % of runs; with 40,
        // (2/3)^40 ≈ 1e-7.
        var files = WriteFiles(tier, 40, "f");
        tier.StartAll();
        var (name, content) = files.First(pair => tier.OwnerOf(pair.Key) == 0);

        await AskAsync(tier, 1, name, content, deadline.Token); // relayed from proxy 0, over a pooled connection
        await tier.StopAsync(0);
        await AskAsync(tier, 1, name, content, deadline.Token); // that connection is dead now: retried, proxy 0 found down

        (await tier.StatsAsync(1, deadline.Token))["tier_peer_failures"].Should().Be(1);
        tier.Origin.Gets(name).Should().Be(2, "proxy 0 fetched it once, and its names' next peer once more");
    }

    [Fact]
    public async Task The_owner_fills_over_the_origin_s_addresses_and_the_other_peer_from_the_owner()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Relay? relay = null; // made once the origin's port is known, before any proxy starts
        var originPort = 0;
        await using var tier = new TierCluster(output, 2, configureCache: options => options with
        {
            Multipath = new UpstreamMultipath([("127.0.0.1", originPort), ("127.0.0.1", relay!.EndPoint.Port)],
                new MultipathOptions { Mode = MultipathMode.All, MinChunkBytes = 256 * 1024, MaxChunkBytes = 256 * 1024 }),
        });
        // The origin's second address: a relay standing for a second path.
        originPort = tier.OriginPort;
        await using var secondPath = relay = new Relay(new IPEndPoint(IPAddress.Loopback, originPort));
        var content = Fetch.RandomBytes(5 * 1024 * 1024 + 333, seed: 137);
        const string name = "multi/big.bin";
        tier.Root.Write(name, content);
        tier.StartAll();
        var owner = tier.OwnerOf(name);

        await AskAsync(tier, 1 - owner, name, content, deadline.Token);
        await AskAsync(tier, owner, name, content, deadline.Token);

        relay.Forwarded.Should().BeGreaterThan(256 * 1024, "the owner's fill went over both of the origin's addresses");
        tier.Origin.Gets(name).Should().BeGreaterThan(1, "a multipath fill asks the origin for chunks");
        var other = await tier.StatsAsync(1 - owner, deadline.Token);
        var owners = await tier.StatsAsync(owner, deadline.Token);
        other["tier_forwarded"].Should().Be(1, "the other peer fetched the name from its owner");
        owners["tier_hop_marked_received"].Should().Be(1);
        owners["cache_hits"].Should().Be(1, "the owner's second answer came from the copy its multipath fill made");
    }

    [Fact]
    public async Task Peers_that_serve_tls_ask_each_other_over_tls()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var tier = new TierCluster(output, 2, tls: TestCertificates.SelfSigned("tier"));
        var files = WriteFiles(tier, 12, "t");
        tier.StartAll();

        foreach (var name in files.Keys)
        {
            await AskAsync(tier, 1 - tier.OwnerOf(name), name, files[name], deadline.Token);
        }

        files.Keys.Should().OnlyContain(name => tier.Origin.Gets(name) == 1, "each name was fetched from the origin by its owner alone");
        for (var proxy = 0; proxy < tier.Count; proxy++)
        {
            var stats = await tier.StatsAsync(proxy, deadline.Token);
            var others = files.Keys.Count(name => tier.OwnerOf(name) != proxy);
            stats["tier_forwarded"].Should().Be(others, "proxy {0} asked the owner, over TLS, for each name it does not own", proxy);
            stats["tier_peer_failures"].Should().Be(0);
        }
    }

    [Fact]
    public async Task A_peer_that_accepts_connections_but_never_answers_is_marked_down_and_its_names_come_from_the_origin()
    {
        // A hung peer: its port listens (the kernel completes every handshake) and nothing ever answers.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var hungPort = new OwnedPort();
        using var hung = hungPort.Listen();
        var hungPeer = new TierPeer("127.0.0.1", hungPort.Port);
        await using var tier = new TierCluster(output, 1, (cluster, _) => new TierOptions
        {
            Peers = [cluster.Peers[0], hungPeer],
            Self = cluster.Peers[0],
            DownFor = TimeSpan.FromMinutes(1),
            Connection = new FileClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2), ResponseTimeout = TimeSpan.FromSeconds(1) },
        });
        var files = WriteFiles(tier, 40, "h");
        var ranking = new Rendezvous([tier.Peers[0], hungPeer]);
        var hungs = files.Keys.Where(name => ranking.Peers[ranking.Owner(name)] == hungPeer).Take(3).ToArray();
        tier.StartAll();

        foreach (var name in hungs)
        {
            await AskAsync(tier, 0, name, files[name], deadline.Token);
        }

        var stats = await tier.StatsAsync(0, deadline.Token);
        stats["tier_peer_failures"].Should().Be(1, "the first request found the peer silent and marked it down; the others went to the origin");
        stats["tier_peers_down"].Should().Be(1);
        hungs.Should().HaveCount(3).And.OnlyContain(name => tier.Origin.Gets(name) == 1);
    }

    private static Dictionary<string, byte[]> WriteFiles(TierCluster tier, int count, string prefix)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"{prefix}/{i:D3}.bin");
            var content = Fetch.RandomBytes(1 + ((i * 7919) % (96 * 1024)), seed: HashCode.Combine(prefix, i));
            tier.Root.Write(name, content);
            files[name] = content;
        }
        return files;
    }

    private static async Task AskAsync(TierCluster tier, int proxy, string name, byte[] expected, CancellationToken cancellationToken)
    {
        await using var client = await tier.ConnectAsync(proxy, cancellationToken);
        var result = await Fetch.GetAsync(client, name, cancellationToken);
        result.Head.IsOk.Should().BeTrue("proxy {0} answers {1}: {2}", proxy, name, result.Head.Message);
        result.Body.Should().Equal(expected);
        Protocol.Wire.ContentDigest.Of(result.Body).Should().Be(result.Head.File!.Digest);
    }
}
