using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
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
        using var root = new TempDirectory("fileproxy-pool");
        root.Write("a.bin", Fetch.RandomBytes(1000, seed: 5));
        await using var server = OriginServer.Create(root.Path,
            OriginServer.Loopback() with { IdleTimeout = TimeSpan.FromMilliseconds(300) }, TestLog.For(output, "origin"));
        server.Start();
        await using var pool = new FileClientPool("127.0.0.1", server.LocalEndPoint.Port);

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
        using var root = new TempDirectory("fileproxy-pool");
        root.Write("a.bin", Fetch.RandomBytes(1000, seed: 5));
        await using var server = OriginServer.Create(root.Path, OriginServer.Loopback(), TestLog.For(output, "origin"));
        server.Start();
        await using var pool = new FileClientPool("127.0.0.1", server.LocalEndPoint.Port);

        var first = await pool.RentAsync(deadline.Token);
        (await first.StatAsync("a.bin", deadline.Token)).Status.Should().Be(StatusCode.Ok);
        await pool.ReturnAsync(first);
        var second = await pool.RentAsync(deadline.Token);
        await pool.ReturnAsync(second);

        second.Should().BeSameAs(first);
    }
}
