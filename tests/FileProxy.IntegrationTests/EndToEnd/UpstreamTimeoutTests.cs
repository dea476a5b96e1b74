using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>The proxy's upstream side never waits forever either: an origin that accepts and never answers ends the
/// miss after --upstream-response-timeout with UpstreamUnavailable and a message that says which wait ran out.
/// Runs the real proxy program.</summary>
public sealed class UpstreamTimeoutTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_silent_origin_ends_a_miss_after_the_upstream_response_timeout()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(16);
        var accepted = new List<Socket>();
        var accepting = Task.Run(async () =>
        {
            while (!deadline.IsCancellationRequested)
            {
                accepted.Add(await silent.AcceptAsync(deadline.Token)); // held open, never answered
            }
        }, deadline.Token);
        using var cache = new TempDirectory("fileproxy-cache");
        await using var proxy = ProxyProcess.Start(((IPEndPoint)silent.LocalEndPoint!).Port, cache.Path, output,
            "--upstream-response-timeout", "1s");
        await proxy.WaitUntilListeningAsync(deadline.Token);
        await using var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token);

        var stopwatch = Stopwatch.StartNew();
        var result = await Fetch.GetAsync(client, "any.bin", deadline.Token);

        result.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        result.Head.Message.Should().Contain("answered nothing within 1.000 s");
        stopwatch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30), "the 60 s default would have been waited out otherwise");
        foreach (var socket in accepted)
        {
            socket.Dispose();
        }
    }
}
