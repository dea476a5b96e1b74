using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>The connection pool the proxy fetches through, against a server that closes idle connections.</summary>
public sealed class ConnectionPoolTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_pooled_connection_the_server_closed_while_idle_is_not_handed_out_again()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var origin = PooledOrigin.Start(output, TimeSpan.FromMilliseconds(300));
        var (server, pool) = (origin.Server, origin.Pool);

        var first = await pool.RentAsync(deadline.Token);
        (await first.StatAsync("a.bin", deadline.Token)).Status.Should().Be(StatusCode.Ok);
        await pool.ReturnAsync(first);
        await Poll.UntilAsync(() => server.ActiveConnections == 0, "the server closed the idle connection", deadline.Token);
        var second = await pool.RentAsync(deadline.Token);
        var stat = await second.StatAsync("a.bin", deadline.Token);
        await pool.ReturnAsync(second);

        second.Should().NotBeSameAs(first, "the first connection was closed by the server while it sat in the pool");
        stat.Status.Should().Be(StatusCode.Ok);
    }

    [Fact]
    public async Task A_pooled_connection_that_is_still_open_is_reused()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var origin = PooledOrigin.Start(output);
        var (server, pool) = (origin.Server, origin.Pool);

        var first = await pool.RentAsync(deadline.Token);
        (await first.StatAsync("a.bin", deadline.Token)).Status.Should().Be(StatusCode.Ok);
        await pool.ReturnAsync(first);
        var second = await pool.RentAsync(deadline.Token);
        await pool.ReturnAsync(second);

        second.Should().BeSameAs(first);
    }

    [Fact]
    public async Task Warming_leaves_one_idle_connection_that_the_first_rent_uses()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var origin = PooledOrigin.Start(output);
        var (server, pool) = (origin.Server, origin.Pool);

        (await pool.WarmAsync(deadline.Token)).Should().BeTrue();
        (await pool.WarmAsync(deadline.Token)).Should().BeTrue("one connection is idle already");
        pool.IdleCount.Should().Be(1);
        await Poll.UntilAsync(() => server.ActiveConnections == 1, "the origin accepted the warm connection", deadline.Token);
        var client = await pool.RentAsync(deadline.Token);
        var stat = await client.StatAsync("a.bin", deadline.Token);
        await pool.ReturnAsync(client);

        stat.Status.Should().Be(StatusCode.Ok);
        server.ActiveConnections.Should().Be(1, "the second warm-up opened nothing and the rent took the warm connection");
    }

    [Fact]
    public async Task A_started_proxy_holds_an_idle_upstream_connection_that_its_first_miss_uses()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(100_000, seed: 6);
        cluster.Root.Write("a.bin", content);

        await Poll.UntilAsync(() => cluster.Cache.UpstreamIdle == 1, "the proxy connected to the origin before any request",
            deadline.Token);
        await Poll.UntilAsync(() => cluster.Origin!.ActiveConnections == 1, "the origin accepted it", deadline.Token);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var result = await Fetch.GetAsync(client, "a.bin", deadline.Token);

        result.Head.Source.Should().Be(ResponseSource.CacheMiss);
        result.Body.Should().Equal(content);
        cluster.Origin!.ActiveConnections.Should().Be(1, "the miss was fetched over the warm connection, not a new one");
    }

    /// <summary>An origin serving a.bin (1000 bytes) on loopback, with an optional idle timeout, and a pool of
    /// connections to it; disposes all three.</summary>
    private sealed class PooledOrigin : IAsyncDisposable
    {
        private readonly TempDirectory _root;

        private PooledOrigin(TempDirectory root, ProtocolServer server)
        {
            _root = root;
            Server = server;
            Pool = new FileClientPool("127.0.0.1", server.LocalEndPoint.Port);
        }

        public ProtocolServer Server { get; }

        public FileClientPool Pool { get; }

        public static PooledOrigin Start(ITestOutputHelper output, TimeSpan? idleTimeout = null)
        {
            var root = new TempDirectory("fileproxy-pool");
            root.Write("a.bin", Fetch.RandomBytes(1000, seed: 5));
            var options = OriginServer.Loopback();
            if (idleTimeout is { } timeout)
            {
                options = options with { IdleTimeout = timeout };
            }
            var server = OriginServer.Create(root.Path, options, TestLog.For(output, "origin"));
            server.Start();
            return new PooledOrigin(root, server);
        }

        public async ValueTask DisposeAsync()
        {
            await Pool.DisposeAsync();
            await Server.DisposeAsync();
            _root.Dispose();
        }
    }
}
