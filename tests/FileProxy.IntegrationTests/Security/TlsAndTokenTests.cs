using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy;
using FileProxy.Proxy.Cache;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Security;

/// <summary>
/// TLS on every hop and a shared token per connection: bytes arrive exact through a TLS proxy in front of a TLS
/// origin (miss and hit); an untrusted certificate, a plain client, a missing or wrong token are refused with a
/// clear reason, and the real client program exits with the documented codes.
/// </summary>
public sealed class TlsAndTokenTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDirectory _work = new("fileproxy-tls");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task A_file_crosses_a_tls_proxy_in_front_of_a_tls_origin_byte_exact_on_a_miss_and_a_hit()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (certificate, trust) = SelfSigned("origin-and-proxy");
        using var root = new TempDirectory("fileproxy-root");
        using var cache = new TempDirectory("fileproxy-cache");
        var content = Fetch.RandomBytes(3_000_000, seed: 130);
        root.Write("secret.bin", content);
        var tls = new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), TlsCertificate = certificate, Token = "origin-token" };
        await using var origin = new ProtocolServer(new DirectorySource(root.Path), tls, TestLog.For(output, "origin"));
        origin.Start();
        var (proxy, source) = ProxyServer.Create("127.0.0.1", origin.LocalEndPoint.Port,
            new CacheOptions { Directory = cache.Path, Fsync = false }, tls with { Token = "proxy-token" },
            new FileClientOptions { Tls = true, TlsTrust = trust, Token = "origin-token" }, TestLog.For(output, "proxy"));
        await using (proxy)
        await using (source)
        {
            proxy.Start();
            await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.LocalEndPoint.Port,
                new FileClientOptions { Tls = true, TlsTrust = trust, Token = "proxy-token" }, deadline.Token);

            var miss = await Fetch.GetAsync(client, "secret.bin", deadline.Token);
            await Poll.UntilAsync(async () => (await client.StatsAsync(deadline.Token)).Counters.Single(c => c.Key == "fills_in_progress").Value == 0,
                "the fill is committed", deadline.Token);
            var hit = await Fetch.GetAsync(client, "secret.bin", deadline.Token);
            var range = await Fetch.GetAsync(client, "secret.bin", deadline.Token, offset: 100, length: 50_000);

            miss.Body.Should().Equal(content);
            miss.Head.Source.Should().Be(ResponseSource.CacheMiss);
            hit.Body.Should().Equal(content);
            hit.Head.Source.Should().Be(ResponseSource.CacheHit);
            range.Body.Should().Equal(content.AsSpan(100, 50_000).ToArray());
        }
    }

    [Fact]
    public async Task An_untrusted_certificate_and_a_plain_client_are_refused_clearly()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (certificate, _) = SelfSigned("server");
        var (_, otherTrust) = SelfSigned("someone-else");
        using var root = new TempDirectory("fileproxy-root");
        root.Write("a.bin", Fetch.RandomBytes(1000, seed: 131));
        await using var origin = new ProtocolServer(new DirectorySource(root.Path),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), TlsCertificate = certificate }, TestLog.For(output, "origin"));
        origin.Start();
        var port = origin.LocalEndPoint.Port;

        var untrusted = () => FileClient.ConnectAsync("127.0.0.1", port, new FileClientOptions { Tls = true, TlsTrust = otherTrust }, deadline.Token);
        await untrusted.Should().ThrowAsync<UpstreamException>().WithMessage("TLS with 127.0.0.1:* failed*");

        await using var plain = await FileClient.ConnectAsync("127.0.0.1", port, new FileClientOptions { ResponseTimeout = TimeSpan.FromSeconds(5) }, deadline.Token);
        var plainGet = () => plain.StatAsync("a.bin", deadline.Token);
        await plainGet.Should().ThrowAsync<UpstreamException>("a plain client gets no FileProxy answer from a TLS server");
    }

    [Fact]
    public async Task A_missing_or_wrong_token_is_refused_and_the_right_one_is_served()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(1000, seed: 132);
        root.Write("a.bin", content);
        await using var origin = new ProtocolServer(new DirectorySource(root.Path),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), Token = "s3cret" }, TestLog.For(output, "origin"));
        origin.Start();
        var port = origin.LocalEndPoint.Port;

        await using var none = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: deadline.Token);
        var withoutToken = await none.StatAsync("a.bin", deadline.Token);
        var wrong = () => FileClient.ConnectAsync("127.0.0.1", port, new FileClientOptions { Token = "guess" }, deadline.Token);
        await using var right = await FileClient.ConnectAsync("127.0.0.1", port, new FileClientOptions { Token = "s3cret" }, deadline.Token);
        var served = await Fetch.GetAsync(right, "a.bin", deadline.Token);

        withoutToken.Status.Should().Be(StatusCode.Unauthorized);
        (await wrong.Should().ThrowAsync<UpstreamException>()).Which.Status.Should().Be(StatusCode.Unauthorized);
        served.Body.Should().Equal(content);
        var stats = await right.StatsAsync(deadline.Token);
        stats.Counters.Single(c => c.Key == "auth_refused").Value.Should().Be(2);
    }

    [Fact]
    public async Task The_client_program_speaks_tls_with_a_token_and_exits_4_on_a_wrong_token()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(2_000_000, seed: 133);
        root.Write("a.bin", content);
        var (origin, peer, caFile, tokenFile) = await StartTlsOriginWithTokenAsync(root, deadline.Token);
        await using var _ = origin;
        var wrongFile = _work.Write("wrong", "nope\n"u8.ToArray());

        var ok = await ClientProcess.RunAsync(output, ["a.bin", "-p", peer, "--tls-ca", caFile, "--token-file", tokenFile, "-o", _work.Combine("out.bin")], deadline.Token);
        var refused = await ClientProcess.RunAsync(output, ["a.bin", "-p", peer, "--tls-ca", caFile, "--token-file", wrongFile, "-o", _work.Combine("no.bin")], deadline.Token);

        ok.ExitCode.Should().Be(ExitCodes.Success, ok.StandardError);
        File.ReadAllBytes(_work.Combine("out.bin")).Should().Equal(content);
        refused.ExitCode.Should().Be(ExitCodes.Refused);
        refused.Lines().Should().ContainSingle().Which.Should().Contain("refused the token");
        File.Exists(_work.Combine("no.bin")).Should().BeFalse();
    }

    [Fact]
    public async Task The_client_program_given_two_proxies_speaks_tls_and_presents_the_token_on_every_subflow()
    {
        // The origin takes nothing but TLS with the token: a subflow that spoke in the clear, or without the token,
        // could carry nothing, and would show as failed in the summary line.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(6_000_000, seed: 134);
        root.Write("a.bin", content);
        var (origin, peer, caFile, tokenFile) = await StartTlsOriginWithTokenAsync(root, deadline.Token);
        await using var _ = origin;
        var wrongFile = _work.Write("wrong", "nope\n"u8.ToArray());

        var ok = await ClientProcess.RunAsync(output,
            ["a.bin", "-p", peer, "-p", peer, "--multipath", "all", "--tls-ca", caFile, "--token-file", tokenFile, "-o", _work.Combine("out.bin")], deadline.Token);
        var refused = await ClientProcess.RunAsync(output,
            ["a.bin", "-p", peer, "-p", peer, "--tls-ca", caFile, "--token-file", wrongFile, "-o", _work.Combine("no.bin")], deadline.Token);

        ok.ExitCode.Should().Be(ExitCodes.Success, ok.StandardError);
        File.ReadAllBytes(_work.Combine("out.bin")).Should().Equal(content);
        ok.Text().Should().Contain("of 2 subflows carried data").And.NotContain("failed");
        ok.StandardError.Should().NotContain("first --proxy only");
        refused.ExitCode.Should().Be(ExitCodes.Refused, refused.StandardError);
        refused.Lines().Should().ContainSingle().Which.Should().Contain("refused the token");
        File.Exists(_work.Combine("no.bin")).Should().BeFalse();
    }

    [Fact]
    public async Task A_proxy_fills_over_two_addresses_of_a_tls_origin_that_wants_a_token()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (certificate, trust) = SelfSigned("origin");
        using var root = new TempDirectory("fileproxy-root");
        using var cache = new TempDirectory("fileproxy-cache");
        var content = Fetch.RandomBytes(5_000_000, seed: 136);
        root.Write("two.bin", content);
        await using var origin = new ProtocolServer(new DirectorySource(root.Path),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), TlsCertificate = certificate, Token = "origin-token" },
            TestLog.For(output, "origin"));
        origin.Start();
        // The second path: a TCP relay, which sees only what crosses it (TLS records, when subflows speak TLS).
        await using var relay = new Relay(new IPEndPoint(IPAddress.Loopback, origin.LocalEndPoint.Port));
        var upstream = new FileClientOptions { Tls = true, TlsTrust = trust, Token = "origin-token" };
        var options = new CacheOptions
        {
            Directory = cache.Path,
            Fsync = false,
            Multipath = new UpstreamMultipath([("127.0.0.1", origin.LocalEndPoint.Port), ("127.0.0.1", relay.EndPoint.Port)],
                new MultipathOptions { Mode = MultipathMode.All, MinChunkBytes = 256 * 1024, MaxChunkBytes = 256 * 1024, Connection = upstream }),
        };
        var (proxy, source) = ProxyServer.Create("127.0.0.1", origin.LocalEndPoint.Port, options,
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, upstream, TestLog.For(output, "proxy"));
        await using (proxy)
        await using (source)
        {
            proxy.Start();
            await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.LocalEndPoint.Port, cancellationToken: deadline.Token);

            var miss = await Fetch.GetAsync(client, "two.bin", deadline.Token);

            miss.Body.Should().Equal(content);
            relay.Forwarded.Should().BeGreaterThan(256 * 1024, "the second path carried chunks, which the origin serves only over TLS with the token");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_tls_path_closed_mid_transfer_gives_its_chunks_to_the_other(bool reset)
    {
        // Over TLS a close in the middle of a record is an IOException of the TLS stream, not an end of stream:
        // it must still count as that path failing, not as the output file failing.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (certificate, trust) = SelfSigned("origin");
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(6_000_000, seed: 138);
        root.Write("f.bin", content);
        await using var origin = new ProtocolServer(new DirectorySource(root.Path),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), TlsCertificate = certificate }, TestLog.For(output, "origin"));
        origin.Start();
        await using var relay = new Relay(new IPEndPoint(IPAddress.Loopback, origin.LocalEndPoint.Port));
        relay.CutAfter(700_001, reset);
        var options = new MultipathOptions
        {
            Mode = MultipathMode.All,
            MinChunkBytes = 256 * 1024,
            MaxChunkBytes = 256 * 1024,
            Connection = new FileClientOptions { Tls = true, TlsTrust = trust },
        };
        await using var fetcher = await MultipathFetcher.ConnectAsync(
            [("127.0.0.1", origin.LocalEndPoint.Port), ("127.0.0.1", relay.EndPoint.Port)], options, TestLog.For(output, "client"), deadline.Token);
        var head = await fetcher.HeadAsync("f.bin", deadline.Token);
        var path = _work.Combine("f.bin");
        MultipathResult result;
        using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(file, head.File!.Size);
            result = await fetcher.FetchAsync("f.bin", head.File, file, null, deadline.Token);
        }

        File.ReadAllBytes(path).Should().Equal(content);
        result.Subflows[1].Failure.Should().Contain("127.0.0.1", "the relayed path failed, and the transfer went on without it");
        result.Subflows[0].Failure.Should().BeNull();
    }

    [Fact]
    public async Task The_client_program_given_two_proxies_and_a_ca_never_takes_bytes_from_a_plaintext_server()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        root.Write("a.bin", Fetch.RandomBytes(2_000_000, seed: 135));
        var (certificate, _) = SelfSigned("server");
        var caFile = _work.Combine("server.pem");
        await File.WriteAllTextAsync(caFile, certificate.ExportCertificatePem(), deadline.Token);
        await using var plain = new ProtocolServer(new DirectorySource(root.Path),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, TestLog.For(output, "plain"));
        plain.Start();
        var peer = $"127.0.0.1:{plain.LocalEndPoint.Port.ToString(CultureInfo.InvariantCulture)}";

        var run = await ClientProcess.RunAsync(output,
            ["a.bin", "-p", peer, "-p", peer, "--tls-ca", caFile, "--retries", "0", "-o", _work.Combine("out.bin")], deadline.Token);

        run.ExitCode.Should().NotBe(ExitCodes.Success);
        run.Lines().Should().ContainSingle().Which.Should().Contain("TLS");
        File.Exists(_work.Combine("out.bin")).Should().BeFalse();
    }

    /// <summary>An origin over <paramref name="root"/> that speaks TLS (a self-signed certificate, written to a PEM file
    /// the client program can trust) and wants the token "s3cret" (written to a token file).</summary>
    private async Task<(ProtocolServer Origin, string Peer, string CaFile, string TokenFile)> StartTlsOriginWithTokenAsync(
        TempDirectory root, CancellationToken cancellationToken)
    {
        var (certificate, _) = SelfSigned("server");
        var caFile = _work.Combine("server.pem");
        await File.WriteAllTextAsync(caFile, certificate.ExportCertificatePem(), cancellationToken);
        var tokenFile = _work.Write("token", "s3cret\n"u8.ToArray());
        var origin = new ProtocolServer(new DirectorySource(root.Path),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), TlsCertificate = certificate, Token = "s3cret" }, TestLog.For(output, "origin"));
        origin.Start();
        return (origin, $"127.0.0.1:{origin.LocalEndPoint.Port.ToString(CultureInfo.InvariantCulture)}", caFile, tokenFile);
    }

    private static (X509Certificate2 Certificate, X509Certificate2Collection Trust) SelfSigned(string subject) =>
        TestCertificates.SelfSigned(subject);
}
