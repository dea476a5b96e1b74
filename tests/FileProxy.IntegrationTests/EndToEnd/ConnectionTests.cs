using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>Persistent connections, and peers that misbehave on them: each misbehaving connection is answered
/// with an error frame and closed, and nobody else notices.</summary>
public sealed class ConnectionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ShortHeaderTimeout = TimeSpan.FromMilliseconds(300);

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task Many_GET_STAT_and_STATS_requests_go_in_sequence_over_one_connection(Peer peer)
    {
        const int Rounds = 10;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var files = new[] { ("a.bin", Fetch.RandomBytes(10, seed: 1)), ("b.bin", Fetch.RandomBytes(100_000, seed: 2)), ("c/d.bin", Fetch.RandomBytes(0, seed: 3)) };
        foreach (var (name, content) in files)
        {
            cluster.Root.Write(name, content);
        }
        // The proxy opens one connection to the origin as it starts: let it, so that the origin's count is exact.
        await Poll.UntilAsync(() => cluster.Cache.UpstreamIdle == 1, "the proxy's connection to the origin is open", deadline.Token);
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var requests = 0;
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var (name, content) in files)
            {
                var get = await Fetch.GetAsync(client, name, deadline.Token);
                var stat = await client.StatAsync(name, deadline.Token);
                requests += 2;
                get.Body.Should().Equal(content, "round {0}, {1}", round, name);
                stat.File!.Size.Should().Be(content.Length);
                if (peer == Peer.Proxy && round > 0)
                {
                    get.Head.Source.Should().Be(ResponseSource.CacheHit);
                }
            }
            var stats = await client.StatsAsync(deadline.Token);
            requests++;
            stats.Status.Should().Be(StatusCode.Ok);
            await cluster.WaitForFillsAsync(deadline.Token);
        }
        var counters = (await client.StatsAsync(deadline.Token)).Counters.ToDictionary(pair => pair.Key, pair => pair.Value);
        requests++;

        counters["connections_accepted"].Should().Be(peer == Peer.Origin ? 2 : 1,
            "every request went over the one connection (the origin also accepted the proxy's, opened at its start)");
        counters["requests"].Should().Be(requests);
        counters["requests_failed"].Should().Be(0);
        client.IsReusable.Should().BeTrue();
    }

    [Fact]
    public async Task A_body_read_after_its_client_is_disposed_says_so_even_when_the_bytes_came_with_the_head()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("small.bin", Fetch.RandomBytes(20, seed: 4));
        var client = await cluster.ConnectAsync(Peer.Origin, deadline.Token);
        var response = await client.GetAsync(new GetRequest("small.bin"), deadline.Token);
        await response.WaitForBytesAsync(deadline.Token);
        response.HasBufferedBytes.Should().BeTrue("a small body comes with its head");

        await client.DisposeAsync();
        var read = async () => await response.ReadAsync(new byte[100], deadline.Token);

        // What callers (BodyCopy among them) take for a lost connection, not a bug's exception.
        await read.Should().ThrowAsync<ObjectDisposedException>();
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task Garbage_instead_of_a_frame_gets_an_error_frame_and_a_close_while_other_clients_go_on(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(50_000, seed: 13);
        cluster.Root.Write("ok.bin", content);
        await using var bystander = await cluster.ConnectAsync(peer, deadline.Token);
        var before = await Fetch.GetAsync(bystander, "ok.bin", deadline.Token);
        await using var raw = await RawConnection.ConnectAsync(cluster.PortOf(peer), deadline.Token);

        await raw.SendAsync("GET / HTTP/1.1\r\nHost: example\r\n\r\n"u8.ToArray(), deadline.Token);
        var (header, head) = await raw.ReadResponseAsync(Opcode.Get, deadline.Token);
        var closed = await raw.WaitForCloseAsync(deadline.Token);
        var after = await Fetch.GetAsync(bystander, "ok.bin", deadline.Token);
        await using var newcomer = await cluster.ConnectAsync(peer, deadline.Token);
        var fresh = await Fetch.GetAsync(newcomer, "ok.bin", deadline.Token);

        header.Opcode.Should().Be(Opcode.ErrorResponse);
        head.Status.Should().Be(StatusCode.BadRequest);
        head.Message.Should().Contain("magic");
        closed.Should().BeTrue("after garbage the stream position is lost");
        before.Body.Should().Equal(content);
        after.Body.Should().Equal(content);
        fresh.Body.Should().Equal(content);
    }

    [Theory]
    [InlineData(Peer.Proxy, 1_174u)] // one past the largest request payload: a GET with its flags byte
    [InlineData(Peer.Proxy, 65_537u)]
    [InlineData(Peer.Origin, 65_537u)]
    [InlineData(Peer.Origin, uint.MaxValue)]
    public async Task A_frame_announcing_an_oversized_payload_is_refused_without_waiting_for_it(Peer peer, uint payloadLength)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await using var cluster = await Cluster.StartAsync(output);
        await using var raw = await RawConnection.ConnectAsync(cluster.PortOf(peer), deadline.Token);

        await raw.SendAsync(RawConnection.Header(Opcode.Get, payloadLength), deadline.Token);
        var (header, head) = await raw.ReadResponseAsync(Opcode.Get, deadline.Token);
        var closed = await raw.WaitForCloseAsync(deadline.Token);

        header.Opcode.Should().Be(Opcode.ErrorResponse);
        head.Status.Should().Be(StatusCode.BadRequest);
        head.Message.Should().Contain("exceeds", "the length itself is the reason, not a timeout waiting for the payload");
        closed.Should().BeTrue();
    }

    [Fact]
    public async Task A_frame_of_another_protocol_version_is_answered_UnsupportedVersion_and_closed()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await using var cluster = await Cluster.StartAsync(output);
        await using var raw = await RawConnection.ConnectAsync(cluster.ProxyPort, deadline.Token);

        await raw.SendAsync(RawConnection.Header(Opcode.Stats, 0, version: 2), deadline.Token);
        var (_, head) = await raw.ReadResponseAsync(Opcode.Stats, deadline.Token);
        var closed = await raw.WaitForCloseAsync(deadline.Token);

        head.Status.Should().Be(StatusCode.UnsupportedVersion);
        closed.Should().BeTrue();
    }

    [Fact]
    public async Task A_client_that_stalls_mid_header_is_cut_after_the_header_timeout_while_others_are_served()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(40_000, seed: 14);
        root.Write("ok.bin", content);
        await using var server = StartServerWithShortHeaderTimeout(root);
        await using var bystander = await FileClient.ConnectAsync("127.0.0.1", server.LocalEndPoint.Port, cancellationToken: deadline.Token);
        await using var staller = await RawConnection.ConnectAsync(server.LocalEndPoint.Port, deadline.Token);

        var stalledAt = Stopwatch.StartNew();
        await staller.SendAsync(RawConnection.Frame(new GetRequest("ok.bin")).AsMemory(0, 4), deadline.Token);
        var during = await Fetch.GetAsync(bystander, "ok.bin", deadline.Token);
        var (_, head) = await staller.ReadResponseAsync(Opcode.Get, deadline.Token);
        var cutAfter = stalledAt.Elapsed;
        var closed = await staller.WaitForCloseAsync(deadline.Token);
        var after = await Fetch.GetAsync(bystander, "ok.bin", deadline.Token);

        head.Status.Should().Be(StatusCode.BadRequest);
        head.Message.Should().Contain("in time");
        cutAfter.Should().BeGreaterThanOrEqualTo(ShortHeaderTimeout - TimeSpan.FromMilliseconds(50));
        closed.Should().BeTrue();
        during.Body.Should().Equal(content);
        after.Body.Should().Equal(content);
    }

    [Fact]
    public async Task The_header_timeout_starts_at_the_first_byte_so_an_idle_connection_outlives_it()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var root = new TempDirectory("fileproxy-root");
        await using var server = StartServerWithShortHeaderTimeout(root);
        await using var idle = await RawConnection.ConnectAsync(server.LocalEndPoint.Port, deadline.Token);
        await using var staller = await RawConnection.ConnectAsync(server.LocalEndPoint.Port, deadline.Token);

        await staller.SendAsync(RawConnection.Frame(new StatsRequest()).AsMemory(0, 3), deadline.Token);
        await staller.ReadResponseAsync(Opcode.Stats, deadline.Token);
        await idle.SendAsync(RawConnection.Frame(new StatsRequest()), deadline.Token);
        var (_, head) = await idle.ReadResponseAsync(Opcode.Stats, deadline.Token);

        head.Status.Should().Be(StatusCode.Ok, "the idle connection sent nothing until the staller was cut, so no header timeout ran for it");
    }

    [Fact]
    public async Task A_client_that_takes_none_of_a_response_is_cut_after_the_idle_timeout_while_others_are_served()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(40_000, seed: 15);
        root.Write("ok.bin", content);
        root.Write("big.bin", Fetch.RandomBytes(64 * 1024 * 1024, seed: 16));
        var capture = new LogCapture(output);
        await using var server = StartServer(root, new ProtocolServerOptions { IdleTimeout = TimeSpan.FromSeconds(1) }, capture);
        // A small receive buffer, never read: the 64 MiB body stops moving once the buffers on both sides are full.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.LocalEndPoint.Port), deadline.Token);
        await using var staller = RawConnection.Over(socket);

        await staller.SendAsync(RawConnection.Frame(new GetRequest("big.bin")), deadline.Token);
        await Poll.UntilAsync(() => capture.LinesContaining("took none of the response").Count == 1,
            "the stalled response is cut", deadline.Token);
        await Poll.UntilAsync(() => server.ActiveConnections == 0, "the cut connection is gone", deadline.Token);
        await using var bystander = await FileClient.ConnectAsync("127.0.0.1", server.LocalEndPoint.Port, cancellationToken: deadline.Token);
        var after = await Fetch.GetAsync(bystander, "ok.bin", deadline.Token);

        after.Body.Should().Equal(content);
    }

    private ProtocolServer StartServerWithShortHeaderTimeout(TempDirectory root) =>
        StartServer(root, new ProtocolServerOptions { HeaderTimeout = ShortHeaderTimeout }, output);

    /// <summary>An origin over <paramref name="root"/> on a loopback port of its own, logging to <paramref name="logTo"/>.</summary>
    private static ProtocolServer StartServer(TempDirectory root, ProtocolServerOptions options, ITestOutputHelper logTo)
    {
        var log = TestLog.For(logTo, "origin");
        var server = new ProtocolServer(new DirectorySource(root.Path, log), options with { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log);
        server.Start();
        return server;
    }
}
