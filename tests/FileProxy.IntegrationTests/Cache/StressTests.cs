using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class StressTests(ITestOutputHelper output)
{
    private const int Files = 20;
    private const int MaxFileBytes = 2 * 1024 * 1024;
    private const int Connections = 50;
    private const int RequestsPerConnection = 4;
    private const long CapBytes = 6 * 1024 * 1024;

    [Fact]
    public async Task Two_hundred_random_range_requests_under_eviction_pressure_are_all_byte_exact()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var cluster = await Cluster.StartAsync(output, options => options with { MaxBytes = CapBytes });
        var random = new Random(2024);
        var files = new byte[Files][];
        for (var i = 0; i < Files; i++)
        {
            var size = i switch { 0 => 0, 1 => 1, _ => random.Next(MaxFileBytes + 1) };
            files[i] = Fetch.RandomBytes(size, seed: 1000 + i);
            cluster.Root.Write($"s/{i}.bin", files[i]);
        }
        var plans = Enumerable.Range(0, Connections)
            .Select(c => Enumerable.Range(0, RequestsPerConnection).Select(_ => Plan(random, files)).ToArray())
            .ToArray();

        var failures = await Task.WhenAll(plans.Select(plan => RunConnectionAsync(cluster.ProxyPort, plan, files, deadline.Token)));
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await Poll.UntilAsync(async () =>
        {
            var now = await cluster.ProxyStatsAsync(deadline.Token);
            return now["fills_in_progress"] == 0 && view.DataFiles.Length == now["entries"];
        }, "fills are over and evicted files deleted", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        failures.SelectMany(f => f).Should().BeEmpty();
        stats["bytes_cached"].Should().BeLessThanOrEqualTo(CapBytes);
        stats["bytes_cached"].Should().Be(view.DataBytes);
        stats["evictions"].Should().BePositive("20 files of up to 2 MiB do not fit in 6 MiB");
        view.MetaFiles.Should().HaveCount((int)stats["entries"]);
        view.TempFiles.Should().BeEmpty();
        (stats["cache_hits"] + stats["cache_stale_hits"] + stats["cache_misses"] + stats["coalesced_requests"])
            .Should().Be(Connections * RequestsPerConnection);
        stats["upstream_fetches"].Should().Be(stats["cache_misses"]);
    }

    private sealed record Request(int File, ulong Offset, ulong Length);

    private static Request Plan(Random random, byte[][] files)
    {
        var file = random.Next(files.Length);
        var size = files[file].Length;
        if (random.Next(3) == 0 || size == 0)
        {
            return new Request(file, 0, ProtocolLimits.ToEnd);
        }
        var offset = random.Next(size);
        var length = random.Next(4) == 0 ? ProtocolLimits.ToEnd : (ulong)random.Next(size - offset + 1);
        return new Request(file, (ulong)offset, length);
    }

    /// <summary>Runs one connection's requests in order; returns a description of every wrong answer.</summary>
    private static async Task<List<string>> RunConnectionAsync(int port, Request[] plan, byte[][] files, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var failures = new List<string>();
        var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: cancellationToken);
        try
        {
            foreach (var request in plan)
            {
                try
                {
                    await CheckAsync(client, request, files, failures, cancellationToken);
                }
                catch (UpstreamException e)
                {
                    failures.Add($"s/{request.File}.bin {request.Offset}+{request.Length}: {e.Message}");
                    await client.DisposeAsync();
                    client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: cancellationToken);
                }
            }
        }
        finally
        {
            await client.DisposeAsync();
        }
        return failures;
    }

    private static async Task CheckAsync(FileClient client, Request request, byte[][] files, List<string> failures, CancellationToken cancellationToken)
    {
        var name = $"s/{request.File}.bin";
        var content = files[request.File];
        var start = (int)request.Offset;
        var expected = content.AsSpan(start, (int)Math.Min(request.Length, (ulong)(content.Length - start))).ToArray();
        var answer = await Fetch.GetAsync(client, name, cancellationToken, request.Offset, request.Length);
        if (!answer.Head.IsOk)
        {
            failures.Add($"{name} {request.Offset}+{request.Length}: {answer.Head.Status} {answer.Head.Message}");
        }
        else if (!answer.Body.AsSpan().SequenceEqual(expected))
        {
            failures.Add($"{name} {request.Offset}+{request.Length}: {answer.Body.Length} bytes differ from the expected {expected.Length} ({answer.Head.Source})");
        }
    }
}
