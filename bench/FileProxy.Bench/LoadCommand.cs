using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.Bench;

/// <summary>
/// <c>load</c>: M persistent connections share K requests over a list of names (request i asks for name i mod count,
/// the order bench/wrk-load.lua uses), each connection sending its next request when the previous body is read.
/// Prints one JSON line: requests, seconds, requests per second, p50 and p99 latency.
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
        var command = new Command("load", "M persistent connections send K requests for small files; prints rps, p50 and p99 as JSON")
        {
            proxy, names, connections, requests, warmup,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (parse.GetValue(connections) < 1 || parse.GetValue(requests) < 1 || parse.GetValue(warmup) < 0)
            {
                await Console.Error.WriteLineAsync("error: --connections and --requests must be at least 1, --warmup at least 0");
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
            var clients = new FileClient[parse.GetValue(connections)];
            try
            {
                for (var i = 0; i < clients.Length; i++)
                {
                    clients[i] = await FileClient.ConnectAsync(target.Host, target.Port, cancellationToken: cancellationToken);
                }
                await RunAsync(clients, list, parse.GetValue(warmup), cancellationToken);
                var run = await RunAsync(clients, list, parse.GetValue(requests), cancellationToken);
                var sorted = run.Latencies;
                Array.Sort(sorted);
                JsonLine.Write(w =>
                {
                    w.WriteNumber("requests", sorted.Length);
                    w.WriteNumber("connections", clients.Length);
                    w.WriteNumber("seconds", Math.Round(run.Elapsed.TotalSeconds, 6));
                    w.WriteNumber("rps", Math.Round(sorted.Length / run.Elapsed.TotalSeconds, 1));
                    w.WriteNumber("p50_ms", Math.Round(Percentile(sorted, 50), 4));
                    w.WriteNumber("p99_ms", Math.Round(Percentile(sorted, 99), 4));
                    w.WriteNumber("errors", run.Errors);
                    w.WriteNumber("hits", run.Hits);
                });
                return run.Errors == 0 ? 0 : 1;
            }
            catch (UpstreamException e)
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

    private static async Task<LoadRun> RunAsync(FileClient[] clients, string[] names, int total, CancellationToken cancellationToken)
    {
        var latencies = new double[total];
        var next = -1;
        var errors = 0;
        var hits = 0;
        var start = Stopwatch.GetTimestamp();
        await Task.WhenAll(clients.Select(client => Task.Run(async () =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < total)
                {
                    var begin = Stopwatch.GetTimestamp();
                    await using (var response = await client.GetAsync(new GetRequest(names[i % names.Length]), cancellationToken))
                    {
                        long bytes = 0;
                        int read;
                        while ((read = await response.ReadAsync(buffer, cancellationToken)) > 0)
                        {
                            bytes += read;
                        }
                        if (!response.Head.IsOk || bytes != response.Head.Length)
                        {
                            Interlocked.Increment(ref errors);
                        }
                        if (response.Head.Source is ResponseSource.CacheHit)
                        {
                            Interlocked.Increment(ref hits);
                        }
                    }
                    latencies[i] = Stopwatch.GetElapsedTime(begin).TotalMilliseconds;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }, cancellationToken)));
        return new LoadRun(latencies, Stopwatch.GetElapsedTime(start), errors, hits);
    }

    /// <summary>Nearest-rank percentile of an ascending array.</summary>
    private static double Percentile(double[] sorted, double percent) =>
        sorted[Math.Clamp((int)Math.Ceiling(percent / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];

    private sealed record LoadRun(double[] Latencies, TimeSpan Elapsed, int Errors, int Hits);
}
