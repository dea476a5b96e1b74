using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Hardening;

/// <summary>
/// A FIFO (or other special file) swapped in under the root between a check and the open must never block a
/// request, the socket engine or shutdown; and a connection stuck where cancellation cannot reach must not keep a
/// stopping server alive past its drain timeout.
/// </summary>
public sealed partial class SpecialFileTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_fifo_swapped_with_a_file_under_load_never_blocks_a_request()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(4_000, seed: 70);
        root.Write("swap.bin", content);
        var log = TestLog.For(output, "origin");
        var origin = new ProtocolServer(new DirectorySource(root.Path, log),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), DrainTimeout = TimeSpan.FromSeconds(1) }, log);
        origin.Start();
        var port = origin.LocalEndPoint.Port;

        // The name flips between a regular file and a FIFO, each put in place by an atomic rename, for a while.
        using var swapping = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
        swapping.CancelAfter(TimeSpan.FromSeconds(2));
        var fifoSwaps = 0;
        var swapper = Task.Run(() =>
        {
            var name = root.Combine("swap.bin");
            while (!swapping.IsCancellationRequested)
            {
                var fifo = root.Combine($"fifo-{fifoSwaps}");
                mkfifo(fifo, 0x1A4).Should().Be(0);
                File.Move(fifo, name, overwrite: true);
                fifoSwaps++;
                var file = root.Write($"file-{fifoSwaps}", content);
                File.Move(file, name, overwrite: true);
            }
        }, deadline.Token);

        // Each request has its own short deadline: one blocked in a FIFO open fails the test instead of hanging it.
        var answers = new Dictionary<StatusCode, int>();
        var requesters = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!swapping.IsCancellationRequested)
            {
                using var perRequest = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                perRequest.CancelAfter(TimeSpan.FromSeconds(5));
                await using var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: perRequest.Token);
                var result = await Fetch.GetAsync(client, "swap.bin", perRequest.Token);
                if (result.Head.IsOk)
                {
                    result.Body.Should().Equal(content);
                }
                lock (answers)
                {
                    answers[result.Head.Status] = answers.GetValueOrDefault(result.Head.Status) + 1;
                }
            }
        }, deadline.Token)).ToArray();
        await swapper;
        await Task.WhenAll(requesters);

        output.WriteLine($"{fifoSwaps} FIFO swaps; answers: {string.Join(", ", answers.Select(pair => $"{pair.Key} {pair.Value}"))}");
        answers.Keys.Should().BeSubsetOf([StatusCode.Ok, StatusCode.NotFound]);
        answers.GetValueOrDefault(StatusCode.NotFound).Should().BePositive("the race must have been hit for this test to mean anything");
        await using (var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: deadline.Token))
        {
            (await Fetch.GetAsync(client, "swap.bin", deadline.Token)).Body.Should().Equal(content);
        }
        var stopping = Stopwatch.StartNew();
        await origin.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10), deadline.Token);
        stopping.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_fifo_under_the_root_is_not_found_at_once()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var root = new TempDirectory("fileproxy-root");
        mkfifo(root.Combine("pipe"), 0x1A4).Should().Be(0);
        var log = TestLog.For(output, "origin");
        await using var origin = new ProtocolServer(new DirectorySource(root.Path, log),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log);
        origin.Start();
        await using var client = await FileClient.ConnectAsync("127.0.0.1", origin.LocalEndPoint.Port, cancellationToken: deadline.Token);

        var head = await client.StatAsync("pipe", deadline.Token);

        head.Status.Should().Be(StatusCode.NotFound);
        head.Message.Should().Contain("not a regular file");
    }

    [Fact]
    public async Task A_connection_stuck_in_a_blocking_call_does_not_keep_a_stopping_server_alive()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var stuck = new BlockingSource();
        var log = TestLog.For(output, "origin");
        var server = new ProtocolServer(stuck,
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), DrainTimeout = TimeSpan.FromMilliseconds(300) }, log);
        server.Start();
        try
        {
            await using var client = await FileClient.ConnectAsync("127.0.0.1", server.LocalEndPoint.Port, cancellationToken: deadline.Token);
            var request = client.StatAsync("any", deadline.Token);
            await Task.Run(() => stuck.Entered.Wait(deadline.Token), deadline.Token);

            var stopping = Stopwatch.StartNew();
            await server.StopAsync().WaitAsync(TimeSpan.FromSeconds(15), deadline.Token);

            stopping.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(15), "the drain timeout (plus a short grace) bounds a stop");
            server.ActiveConnections.Should().Be(1, "the stuck connection is left behind, not waited for");
            _ = request;
        }
        finally
        {
            stuck.Release.Set();
            await server.DisposeAsync();
        }
    }

    /// <summary>A source whose STAT blocks its thread in a way no cancellation reaches, like a FIFO open did.</summary>
    private sealed class BlockingSource : IFileSource, IDisposable
    {
        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public string Role => "stuck";

        public IEnumerable<KeyValuePair<string, long>> Counters => [];

        public ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        public ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken)
        {
            Entered.Set();
            Release.Wait(CancellationToken.None);
            return ValueTask.FromResult(ResponseHead.Error(StatusCode.NotFound, "released"));
        }

        public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        public void Dispose()
        {
            Entered.Dispose();
            Release.Dispose();
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkfifo(string path, uint mode);
}
