using System.Security.Cryptography.X509Certificates;
using System.Text;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Tier;

/// <summary>The real client program with <c>--tier</c>: each name straight to its owner, the next one when the owner
/// is down; and <c>stats</c> showing a proxy's view of its tier.</summary>
public sealed class TierClientTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_client_asks_each_name_s_owner_and_the_next_peer_when_the_owner_is_down()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await using var tier = new TierCluster(output, 3);
        using var work = new TempDirectory("fileproxy-tier-client");
        var names = new[] { "t/0.bin", "t/1.bin", "t/2.bin", "t/3.bin" };
        foreach (var (name, i) in names.Select((name, i) => (name, i)))
        {
            tier.Root.Write(name, Fetch.RandomBytes(20_000 + i, seed: 70 + i));
        }
        tier.StartAll();
        var list = string.Join(',', tier.Peers.Select(peer => peer.Id));

        foreach (var name in names)
        {
            var run = await ClientProcess.RunAsync(output, [name, "--tier", list, "-o", work.Combine(Path.GetFileName(name))], deadline.Token);
            run.ExitCode.Should().Be(0, run.StandardError);
            File.ReadAllBytes(work.Combine(Path.GetFileName(name))).Should().Equal(File.ReadAllBytes(tier.Root.Combine(name)));
        }
        for (var proxy = 0; proxy < tier.Count; proxy++)
        {
            var stats = await tier.StatsAsync(proxy, deadline.Token);
            stats["tier_forwarded"].Should().Be(0, "the client went to each name's owner itself");
            stats["cache_misses"].Should().Be(names.Count(name => tier.OwnerOf(name) == proxy));
        }

        var orphan = names[0];
        await tier.StopAsync(tier.OwnerOf(orphan));
        var again = await ClientProcess.RunAsync(output, [orphan, "--tier", list, "-o", "-"], deadline.Token);
        again.ExitCode.Should().Be(0, again.StandardError);
        again.StandardOutput.Should().Equal(File.ReadAllBytes(tier.Root.Combine(orphan)));
        again.StandardError.Should().Contain("does not answer");
    }

    [Fact]
    public async Task Stats_show_the_tier_as_this_proxy_sees_it()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var tier = new TierCluster(output, 3);
        tier.Root.Write("s.bin", Fetch.RandomBytes(1000, seed: 80));
        tier.StartAll();
        var asker = (tier.OwnerOf("s.bin") + 1) % 3;
        await tier.StopAsync(tier.OwnerOf("s.bin"));
        await using (var client = await tier.ConnectAsync(asker, deadline.Token))
        {
            (await Fetch.GetAsync(client, "s.bin", deadline.Token)).Head.IsOk.Should().BeTrue();
        }

        var run = await ClientProcess.RunAsync(output, ["stats", "--proxy", $"127.0.0.1:{tier.Port(asker)}"], deadline.Token);

        run.ExitCode.Should().Be(0, run.StandardError);
        var text = Encoding.UTF8.GetString(run.StandardOutput);
        text.Should().Contain("tier (this proxy's view):");
        text.Should().MatchRegex($@"127\.0\.0\.1:{tier.Port(asker)}\s+self");
        text.Should().MatchRegex($@"127\.0\.0\.1:{tier.Port(tier.OwnerOf("s.bin"))}\s+down\s+forwarded 0, tried again in");
    }

    [Fact]
    public async Task A_proxy_program_serving_tls_asks_its_peer_over_tls()
    {
        // The program is none of the --peer addresses (it listens on a port of its choosing), so it asks the one
        // listed peer, an in-process proxy that serves only TLS, for every name.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var tls = TestCertificates.SelfSigned("tier");
        await using var tier = new TierCluster(output, 1, tls: tls);
        using var work = new TempDirectory("fileproxy-tier-tls");
        var content = Fetch.RandomBytes(300_000, seed: 81);
        tier.Root.Write("p.bin", content);
        tier.StartAll();
        var certificate = work.Write("proxy.pem", Encoding.ASCII.GetBytes(tls.Certificate.ExportCertificatePem()));
        var key = work.Write("proxy.key", Encoding.ASCII.GetBytes(tls.Certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem()));
        string[] serving = ["--tls-cert", certificate, "--tls-key", key, "--peer", tier.Peers[0].Id, "--no-fsync"];

        // --tls-cert alone: TLS to the peer, whose self-signed certificate the system store does not trust, so the
        // peer is marked down and the name comes from the origin.
        var (untrusted, untrustedLog) = await AskThroughProgramAsync(work.Combine("cache1"), serving);
        var (trusted, _) = await AskThroughProgramAsync(work.Combine("cache2"), [.. serving, "--peer-tls-ca", certificate]);

        untrusted["tier_forwarded"].Should().Be(0);
        untrusted["tier_peer_failures"].Should().Be(1);
        untrustedLog.Should().Contain("TLS with 127.0.0.1", "the program spoke TLS to its peer and did not trust it");
        trusted["tier_forwarded"].Should().Be(1, "the program asked its peer");
        trusted["tier_peer_failures"].Should().Be(0, "over TLS, which is all the peer speaks");
        (await tier.StatsAsync(0, deadline.Token))["tier_hop_marked_received"].Should().Be(1);

        async Task<(Dictionary<string, long> Stats, string Log)> AskThroughProgramAsync(string cache, string[] arguments)
        {
            await using var proxy = ProxyProcess.Start(tier.OriginPort, cache, output, arguments);
            await proxy.WaitUntilListeningAsync(deadline.Token);
            await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, tier.ClientOptions, deadline.Token);
            var got = await Fetch.GetAsync(client, "p.bin", deadline.Token);
            got.Body.Should().Equal(content);
            var stats = (await client.StatsAsync(deadline.Token)).Counters.ToDictionary(pair => pair.Key, pair => pair.Value);
            return (stats, proxy.Program.Stdout + proxy.Program.Stderr);
        }
    }
}
