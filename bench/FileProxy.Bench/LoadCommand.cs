using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime;
using System.Threading.Channels;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.Bench;

/// <summary>
/// <c>load</c>: M persistent connections share K requests over a list of names (request i asks for name i mod count,
/// the order bench/wrk-load.lua uses), each connection sending its next request when the previous body is read, or, with
/// --rate, when its time has come. Over the FileProxy protocol, or HTTP/1.1 (--http) for nginx and Varnish, each through
/// a connection as thin as the other, so that one generator measures all three caches alike. Prints one JSON line:
/// requests, seconds, requests per second, mean, p50 and p99 latency.
/// </summary>
internal static class LoadCommand
{
    public static Command Build()
    {
        var proxy = HostPort.Option("--proxy", "Proxy (or server) to load", new HostPort("127.0.0.1", 5000));
        var names = new Option<FileInfo>("--names") { Description = "File with one name to request per line", Required = true };
        var connections = new Option<int>("--connections", "-c") { Description = "Persistent connections", DefaultValueFactory = _ => 64 };
        var requests = new Option<int>("--requests", "-n") { Description = "Requests to time, over all connections", DefaultValueFactory = _ => 10_000 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed requests first, on the same connections", DefaultValueFactory = _ => 0 };
        var rate = new Option<double>("--rate")
        {
            Description = "Timed requests per second over all connections: request i is sent no earlier than i/RATE s after the start, "
                + "so latencies are measured below saturation (0: each connection sends its next request at once)",
            DefaultValueFactory = _ => 0,
        };
        var http = new Option<bool>("--http") { Description = "Speak HTTP/1.1 (GET /NAME) instead of the FileProxy protocol, to load nginx or Varnish" };
        var library = new Option<bool>("--library")
        {
            Description = "Over the FileProxy protocol, send each request through FileClient (timeouts, checks and all) instead of a connection as thin as --http's",
        };
        var trace = new Option<FileInfo?>("--trace") { Description = "Also write each timed request's start and latency (ms, one line each) to this file" };
        var command = new Command("load", "M persistent connections send K requests for small files; prints rps, mean, p50 and p99 as JSON")
        {
            proxy, names, connections, requests, warmup, rate, http, library, trace,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (parse.GetValue(connections) < 1 || parse.GetValue(requests) < 1 || parse.GetValue(warmup) < 0 || !(parse.GetValue(rate) >= 0))
            {
                await Console.Error.WriteLineAsync("error: --connections and --requests must be at least 1, --warmup and --rate at least 0");
                return 2;
            }
            var list = (await File.ReadAllLinesAsync(parse.GetValue(names)!.FullName, cancellationToken))
                .Where(line => line.Length > 0).ToArray();
            if (list.Length == 0)
            {
                await Console.Error.WriteLineAsync("error: the names file is empty");
                return 2;
            }
            var target = parse.GetValue(proxy);
            var clients = new ILoadConnection[parse.GetValue(connections)];
            try
            {
                for (var i = 0; i < clients.Length; i++)
                {
                    clients[i] = parse.GetValue(http)
                        ? await HttpLoadConnection.ConnectAsync(target.Host, target.Port, cancellationToken)
                        : parse.GetValue(library) ? new LibraryLoadConnection(await FileClient.ConnectAsync(target.Host, target.Port, cancellationToken: cancellationToken))
                        : await FileProxyLoadConnection.ConnectAsync(target.Host, target.Port, cancellationToken);
                }
                await RunAsync(clients, list, parse.GetValue(warmup), 0, cancellationToken);
                // No collection during the timed requests, so that the generator's own pauses do not land in the
                // latencies it measures: the region starts with a full collection (before the clock starts) and
                // then lets 240 MiB be allocated, which is more than 105,000 requests need (about 1.3 KB each through
                // FileClient, less over the thin connections). The young generation alone (the project's GCgen0size)
                // did not hold: each paced run of 100,000 still collected once or twice, pausing 3.4-3.5 ms each time.
                var noCollections = GC.TryStartNoGCRegion(240L << 20);
                var (collections, paused) = (GC.CollectionCount(0), GC.GetTotalPauseDuration());
                var run = await RunAsync(clients, list, parse.GetValue(requests), parse.GetValue(rate), cancellationToken);
                (collections, paused) = (GC.CollectionCount(0) - collections, GC.GetTotalPauseDuration() - paused);
                if (noCollections && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
                {
                    GC.EndNoGCRegion();
                }
                if (parse.GetValue(trace) is { } traceFile)
                {
                    await File.WriteAllLinesAsync(traceFile.FullName,
                        run.Starts.Select((start, i) => FormattableString.Invariant($"{start:F4} {run.Latencies[i]:F4}")), cancellationToken);
                }
                var sorted = run.Latencies.ToArray();
                Array.Sort(sorted);
                JsonLine.Write(w =>
                {
                    w.WriteNumber("requests", sorted.Length);
                    w.WriteNumber("connections", clients.Length);
                    w.WriteNumber("rate", parse.GetValue(rate));
                    w.WriteNumber("seconds", Math.Round(run.Elapsed.TotalSeconds, 6));
                    w.WriteNumber("rps", Math.Round(sorted.Length / run.Elapsed.TotalSeconds, 1));
                    w.WriteNumber("mean_ms", Math.Round(sorted.Average(), 4));
                    w.WriteNumber("p50_ms", Math.Round(Percentile(sorted, 50), 4));
                    w.WriteNumber("p99_ms", Math.Round(Percentile(sorted, 99), 4));
                    w.WriteNumber("errors", run.Errors);
                    w.WriteNumber("generator_collections", collections); // its own pauses land in what it measures
                    w.WriteNumber("generator_pause_ms", Math.Round(paused.TotalMilliseconds, 3));
                    w.WriteNumber("hits", run.Hits);
                });
                return run.Errors == 0 ? 0 : 1;
            }
            catch (Exception e) when (e is UpstreamException or SocketException or IOException or InvalidDataException or ProtocolException)
            {
                await Console.Error.WriteLineAsync($"error: {e.Message}");
                return 1;
            }
            finally
            {
                foreach (var client in clients)
                {
                    if (client is not null)
                    {
                        await client.DisposeAsync();
                    }
                }
            }
        });
        return command;
    }

    private static async Task<LoadRun> RunAsync(ILoadConnection[] clients, string[] names, int total, double rate, CancellationToken cancellationToken)
    {
        var latencies = new double[total];
        var starts = new double[total];
        var next = -1;
        var errors = 0;
        var hits = 0;
        var start = Stopwatch.GetTimestamp();
        var ticksPerRequest = rate > 0 ? Stopwatch.Frequency / rate : 0;
        var paced = rate > 0 ? Pacer.Start(start, ticksPerRequest, total) : null;
        await Task.WhenAll(clients.Select(client => Task.Run(async () =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                while (await NextAsync() is var i && i < total)
                {
                    var begin = Stopwatch.GetTimestamp();
                    var result = await client.GetAsync(names[i % names.Length], buffer, cancellationToken);
                    if (!result.Ok)
                    {
                        Interlocked.Increment(ref errors);
                    }
                    if (result.Hit)
                    {
                        Interlocked.Increment(ref hits);
                    }
                    // Paced, a request's latency counts from its time, not from its send: a request that waited for
                    // a free connection waited for the cache (wrk2's correction for coordinated omission).
                    var from = paced is null ? begin : start + (long)(i * ticksPerRequest);
                    latencies[i] = Stopwatch.GetElapsedTime(from).TotalMilliseconds;
                    starts[i] = Stopwatch.GetElapsedTime(start, begin).TotalMilliseconds;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }, cancellationToken)));
        return new LoadRun(latencies, starts, Stopwatch.GetElapsedTime(start), errors, hits);

        // The next request's number: at once, or from the pacer at its time; total when there are no more.
        async ValueTask<int> NextAsync()
        {
            if (paced is null)
            {
                return Interlocked.Increment(ref next);
            }
            // ReadAsync hands each number to one waiting connection (WaitToReadAsync would wake all 64 for each).
            try
            {
                return await paced.ReadAsync(cancellationToken);
            }
            catch (ChannelClosedException)
            {
                return total;
            }
        }
    }

    /// <summary>Nearest-rank percentile of an ascending array.</summary>
    private static double Percentile(double[] sorted, double percent) =>
        sorted[Math.Clamp((int)Math.Ceiling(percent / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];

    /// <summary>One connection over the FileProxy protocol through FileClient (<c>--library</c>); a hit is what the
    /// cache's response head says.</summary>
    private sealed class LibraryLoadConnection(FileClient client) : ILoadConnection
    {
        public async ValueTask<LoadResult> GetAsync(string name, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            await using var response = await client.GetAsync(new GetRequest(name), cancellationToken);
            long bytes = 0;
            int read;
            while ((read = await response.ReadAsync(buffer, cancellationToken)) > 0)
            {
                bytes += read;
            }
            return new LoadResult(response.Head.IsOk && bytes == response.Head.Length, response.Head.Source is ResponseSource.CacheHit);
        }

        public ValueTask DisposeAsync() => client.DisposeAsync();
    }

    /// <summary>Request i started <c>Starts[i]</c> ms after the run began and took <c>Latencies[i]</c> ms.</summary>
    private sealed record LoadRun(double[] Latencies, double[] Starts, TimeSpan Elapsed, int Errors, int Hits);
}

/// <summary>One persistent connection of the load generator, one request in flight.</summary>
internal interface ILoadConnection : IAsyncDisposable
{
    /// <summary>Requests NAME and reads the whole response body into BUFFER (overwriting it as it goes).</summary>
    ValueTask<LoadResult> GetAsync(string name, Memory<byte> buffer, CancellationToken cancellationToken);
}

/// <summary>Whether a response was whole and successful, and whether the cache said it was a hit.</summary>
internal readonly record struct LoadResult(bool Ok, bool Hit);
