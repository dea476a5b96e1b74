using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.Bench;

/// <summary>
/// <c>get</c>: N clients fetch one name at the same time, each on its own connection, over our protocol or (with
/// <c>--http</c>) HTTP/1.1, and print one JSON line per client: time to the first body byte and total time (both
/// from that client's connect), bytes, and the cache's outcome. Both protocols write through the same
/// <see cref="BodySink"/>, so that a difference between systems is not a difference between clients.
/// </summary>
internal static class GetCommand
{
    public static Command Build()
    {
        var name = new Argument<string>("NAME") { Description = "File to fetch" };
        var proxy = HostPort.Option("--proxy", "Proxy (or server, or HTTP cache) to ask", new HostPort("127.0.0.1", 5000));
        var http = new Option<bool>("--http") { Description = "Speak HTTP/1.1 (GET http://PROXY/NAME) instead of our protocol" };
        var clients = new Option<int>("--clients", "-n") { Description = "Concurrent clients, one connection each", DefaultValueFactory = _ => 1 };
        var output = new Option<string?>("--output", "-o")
        {
            Description = "Write the body to this file (client i > 0 writes PATH.i); default: read and discard",
        };
        var warmup = new Option<string?>("--warmup")
        {
            Description = "Fetch this (small, cached) file once before timing, so that this process's first-use costs (JIT) are not timed",
        };
        var verify = new Option<bool>("--verify") { Description = "Check each body's BLAKE3 against the announced digest, as our client does (our protocol only)" };
        var command = new Command("get", "N concurrent clients fetch one file; one JSON line per client")
        {
            name, proxy, http, clients, output, warmup, verify,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var count = parse.GetValue(clients);
            if (count < 1)
            {
                await Console.Error.WriteLineAsync("error: --clients must be at least 1");
                return 2;
            }
            if (parse.GetValue(http) && parse.GetValue(verify))
            {
                await Console.Error.WriteLineAsync("error: --verify needs our protocol: HTTP announces no digest");
                return 2;
            }
            var target = parse.GetValue(proxy);
            var path = parse.GetValue(output);
            Func<string, string?, Task<FetchResult>> fetch = parse.GetValue(http)
                ? (file, to) => FetchHttpAsync(target, file, to, cancellationToken)
                : (file, to) => FetchAsync(target, file, to, parse.GetValue(verify), cancellationToken);
            if (parse.GetValue(warmup) is { } warmupName)
            {
                var warmupPath = path is null ? null : path + ".warmup";
                var warm = await fetch(warmupName, warmupPath);
                if (warmupPath is not null)
                {
                    File.Delete(warmupPath);
                }
                if (warm.Error is not null)
                {
                    await Console.Error.WriteLineAsync($"error: warm-up fetch of {warmupName} failed: {warm.Error}");
                    return 1;
                }
            }
            var fileName = parse.GetValue(name)!;
            var results = await Task.WhenAll(Enumerable.Range(0, count)
                .Select(i => Task.Run(() => fetch(fileName, path is null ? null : i == 0 ? path : $"{path}.{i}"), cancellationToken)));
            for (var i = 0; i < results.Length; i++)
            {
                var result = results[i];
                JsonLine.Write(w =>
                {
                    w.WriteNumber("client", i);
                    w.WriteBoolean("ok", result.Error is null);
                    w.WriteNumber("ttfb_s", Math.Round(result.TimeToFirstByte.TotalSeconds, 6));
                    w.WriteNumber("total_s", Math.Round(result.Total.TotalSeconds, 6));
                    w.WriteNumber("bytes", result.Bytes);
                    w.WriteString("cache", result.Cache);
                    if (result.Error is not null)
                    {
                        w.WriteString("error", result.Error);
                    }
                });
            }
            return results.All(r => r.Error is null) ? 0 : 1;
        });
        return command;
    }

    private static async Task<FetchResult> FetchAsync(HostPort target, string name, string? path, bool verify,
        CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var cache = "none";
        try
        {
            await using var client = await FileClient.ConnectAsync(target.Host, target.Port, cancellationToken: cancellationToken);
            await using var response = await client.GetAsync(new GetRequest(name), cancellationToken);
            var head = response.Head;
            cache = CacheOutcome(head.Source);
            if (!head.IsOk)
            {
                return FetchResult.Failed(start, cache, $"{head.Status}: {head.Message}");
            }
            using var hash = verify ? new ContentHasher() : null;
            var (ttfb, bytes) = await BodySink.ReceiveAsync(response.ReadAsync, path, hash, start, cancellationToken);
            var error = bytes != head.Length ? $"received {bytes} of {head.Length} bytes"
                : hash is not null && hash.Finish() != head.File!.Digest ? "BLAKE3 mismatch"
                : null;
            return new FetchResult(ttfb, Stopwatch.GetElapsedTime(start), bytes, cache, error);
        }
        catch (Exception e) when (e is UpstreamException or IOException or UnauthorizedAccessException)
        {
            return FetchResult.Failed(start, cache, e.Message);
        }
    }

    private static async Task<FetchResult> FetchHttpAsync(HostPort target, string name, string? path, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var cache = "none";
        try
        {
            // One handler per client: its own connection, as each of our clients has, and no proxy from the environment.
            using var handler = new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 1 };
            using var http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
            using var response = await http.GetAsync(new Uri($"http://{target}/{name}"), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            cache = response.Headers.TryGetValues("X-Cache-Status", out var values) ? string.Join(",", values) : "";
            if (!response.IsSuccessStatusCode)
            {
                return FetchResult.Failed(start, cache, $"HTTP {(int)response.StatusCode}");
            }
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            var (ttfb, bytes) = await BodySink.ReceiveAsync(body.ReadAsync, path, null, start, cancellationToken);
            var length = response.Content.Headers.ContentLength;
            var error = length is { } expected && bytes != expected ? $"received {bytes} of {expected} bytes" : null;
            return new FetchResult(ttfb, Stopwatch.GetElapsedTime(start), bytes, cache, error);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or UnauthorizedAccessException)
        {
            return FetchResult.Failed(start, cache, e.Message);
        }
    }

    /// <summary>Our proxy's answer in the words an HTTP cache's status header uses.</summary>
    private static string CacheOutcome(ResponseSource source) => source switch
    {
        ResponseSource.CacheHit or ResponseSource.StaleHit => "HIT",
        ResponseSource.CacheMiss => "MISS",
        ResponseSource.CacheCoalesced => "COALESCED",
        ResponseSource.PassThrough => "PASS",
        _ => "ORIGIN",
    };

    private sealed record FetchResult(TimeSpan TimeToFirstByte, TimeSpan Total, long Bytes, string Cache, string? Error)
    {
        public static FetchResult Failed(long start, string cache, string error) =>
            new(TimeSpan.Zero, Stopwatch.GetElapsedTime(start), 0, cache, error);
    }
}
