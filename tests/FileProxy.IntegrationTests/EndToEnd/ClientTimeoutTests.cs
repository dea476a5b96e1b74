using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>
/// The client never waits forever: a peer that does not accept, does not answer, stalls mid-body or speaks HTTP ends
/// the run with exit 5 and a line that says which wait ran out. Each runs the real client program against a
/// misbehaving listener on loopback.
/// </summary>
public sealed class ClientTimeoutTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_listener_that_never_answers_hits_the_response_timeout()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var listener = Listen();
        var silent = AcceptAndHoldAsync(listener, _ => Task.CompletedTask, deadline.Token);

        var (run, elapsed) = await RunAsync(listener, deadline.Token, "--response-timeout", "1s");

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        run.Lines().Should().ContainSingle().Which.Should().Contain("answered nothing within 1.000 s");
        elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_body_that_stalls_hits_the_idle_timeout()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var listener = Listen();
        var stalling = AcceptAndHoldAsync(listener, async socket =>
        {
            var buffer = new byte[4096];
            await socket.ReceiveAsync(buffer, deadline.Token);
            var head = new ResponseHead(StatusCode.Ok, "")
            {
                File = new FileMetadata(1_000, "v1", new ContentDigest(new byte[32])),
                Offset = 0,
                Length = 1_000,
                Source = ResponseSource.Origin,
            };
            var length = WireCodec.EncodeResponse(Opcode.Get, head, buffer);
            await socket.SendAsync(buffer.AsMemory(0, length), deadline.Token);
            await socket.SendAsync(new byte[10], deadline.Token);
        }, deadline.Token);

        var (run, _) = await RunAsync(listener, deadline.Token, "--idle-timeout", "1s");

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        run.Lines().Should().ContainSingle().Which.Should().Contain("sent no body byte for 1.000 s (10 of 1000 bytes received)");
    }

    [Fact]
    public async Task The_max_time_bounds_the_whole_run()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var listener = Listen();
        var silent = AcceptAndHoldAsync(listener, _ => Task.CompletedTask, deadline.Token);

        var (run, elapsed) = await RunAsync(listener, deadline.Token, "--max-time", "1s");

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        run.Lines().Should().ContainSingle().Which.Should().Contain("gave up after --max-time 1.000 s");
        elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_listener_whose_accept_queue_is_full_hits_the_connect_timeout()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var listener = Listen(backlog: 0);
        // Fill the accept queue: with nobody accepting, the kernel drops the next SYNs and a connect waits.
        using var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await filler.ConnectAsync(listener.LocalEndPoint!, deadline.Token);
        using var filler2 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var waiting = filler2.ConnectAsync(listener.LocalEndPoint!, deadline.Token).AsTask();

        var (run, _) = await RunAsync(listener, deadline.Token, "--connect-timeout", "1s");

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        run.Lines().Should().ContainSingle().Which.Should().Contain("timed out after 1.000 s");
    }

    [Fact]
    public async Task An_http_server_is_a_protocol_error_not_a_hang()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var listener = Listen();
        var http = AcceptAndHoldAsync(listener, async socket =>
        {
            await socket.ReceiveAsync(new byte[4096], deadline.Token);
            await socket.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), deadline.Token);
            socket.Shutdown(SocketShutdown.Both);
        }, deadline.Token);

        var (run, _) = await RunAsync(listener, deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        run.Lines().Should().ContainSingle().Which.Should().Contain("broke the protocol");
    }

    private static Socket Listen(int backlog = 16)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(backlog);
        return listener;
    }

    /// <summary>Accepts one connection, runs <paramref name="behave"/> on it, then holds it open until the test ends.</summary>
    private static async Task AcceptAndHoldAsync(Socket listener, Func<Socket, Task> behave, CancellationToken cancellationToken)
    {
        using var socket = await listener.AcceptAsync(cancellationToken);
        await behave(socket);
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task<(ClientRun Run, TimeSpan Elapsed)> RunAsync(Socket listener, CancellationToken cancellationToken, params string[] args)
    {
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port.ToString(CultureInfo.InvariantCulture);
        var stopwatch = Stopwatch.StartNew();
        // One try: each test is about one wait running out (retries have their own tests, ClientRetryTests).
        var run = await ClientProcess.RunAsync(output, ["any.bin", "-p", $"127.0.0.1:{port}", "-o", "/dev/null", "--retries", "0", .. args], cancellationToken);
        return (run, stopwatch.Elapsed);
    }
}
