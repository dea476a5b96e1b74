using System.Net;
using System.Net.Sockets;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Hardening;

/// <summary>
/// A client that leaves mid-body is ordinary: the proxy cuts that response and logs a Debug line, never a Warning or
/// an Error with a stack trace, whether the body came from the cache (sendfile) or from a fill still running.
/// </summary>
public sealed class ClientDisconnectTests(ITestOutputHelper output)
{
    private const int FileBytes = 16 * 1024 * 1024;

    [Fact]
    public async Task A_client_that_resets_mid_body_of_a_cached_file_costs_no_warning_or_error()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var log = new LogCapture(output);
        await using var cluster = await Cluster.StartAsync(log);
        cluster.Root.Write("big.bin", Fetch.RandomBytes(FileBytes, seed: 31));
        await using (var client = await cluster.ConnectProxyAsync(deadline.Token))
        {
            await ProxyCache.WarmAsync(cluster, client, "big.bin", deadline.Token);
        }

        await ResetMidBodyAsync(cluster.ProxyPort, "big.bin", deadline.Token);
        await Poll.UntilAsync(() => ProxyLines(log, "Cut after").Count == 1, "the cut response's request line is logged", deadline.Token);

        ProxyLines(log, "[Warning]").Should().BeEmpty();
        ProxyLines(log, "[Error]").Should().BeEmpty();
        ProxyLines(log, "Peer went away during the response").Should().ContainSingle().Which.Should().Contain("[Debug]");
    }

    [Fact]
    public async Task A_client_that_resets_mid_body_of_a_running_fill_costs_no_warning_or_error_and_the_fill_goes_on()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var log = new LogCapture(output);
        var gate = new OriginGate(holdAfter: 2 * 1024 * 1024);
        await using var cluster = await Cluster.StartAsync(log, wrapOrigin: gate.Wrap);
        var content = Fetch.RandomBytes(FileBytes, seed: 32);
        cluster.Root.Write("cold.bin", content);

        var resetting = ResetMidBodyAsync(cluster.ProxyPort, "cold.bin", deadline.Token);
        await Poll.UntilAsync(() => gate.Held == 1, "the fill is stalled at the origin", deadline.Token);
        await resetting;
        gate.Open();
        await Poll.UntilAsync(() => ProxyLines(log, "Cut after").Count == 1, "the cut response's request line is logged", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var hit = await Fetch.GetAsync(client, "cold.bin", deadline.Token);

        hit.Head.Source.Should().Be(ResponseSource.CacheHit, "one reader leaving does not stop the fill");
        hit.Body.Should().Equal(content);
        ProxyLines(log, "[Warning]").Should().BeEmpty();
        ProxyLines(log, "[Error]").Should().BeEmpty();
    }

    /// <summary>Asks for <paramref name="name"/> with a small receive window, reads part of the body, then closes
    /// with a reset (linger 0) while the proxy still has bytes to send.</summary>
    private static async Task ResetMidBodyAsync(int port, string name, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 64 * 1024 };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        await socket.SendAsync(RawConnection.Frame(new GetRequest(name)), SocketFlags.None, cancellationToken);
        var buffer = new byte[256 * 1024];
        long received = 0;
        while (received < 1024 * 1024)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            read.Should().BePositive("the proxy sends the body");
            received += read;
        }
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    private static List<string> ProxyLines(LogCapture log, string text) =>
        [.. log.LinesContaining(text).Where(line => line.Contains("proxy:", StringComparison.Ordinal))];
}
