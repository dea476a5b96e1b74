using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using FileProxy.Proxy.Cache;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

/// <summary>
/// Once a client holds a whole file from a miss, the proxy must behave as if the file is cached: the next request
/// is a hit and a purge finds the entry. With fsync on (the default) the proxy verifies, fsyncs and only then
/// commits, so each test repeats the sequence over several files to catch a requester that finishes first.
/// </summary>
public sealed class CommitOrderTests(ITestOutputHelper output)
{
    private const int Files = 30;

    private static CacheOptions Durable(CacheOptions options) => options with { Fsync = true, AllowPurge = true };

    [Fact]
    public async Task The_request_after_a_completed_miss_is_a_hit()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, Durable);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var sources = new List<ResponseSource>();

        for (var i = 0; i < Files; i++)
        {
            cluster.Root.Write($"f{i}.bin", Fetch.RandomBytes(1024 * 1024, seed: i));
            await Fetch.GetAsync(client, $"f{i}.bin", deadline.Token);
            sources.Add((await Fetch.GetAsync(client, $"f{i}.bin", deadline.Token)).Head.Source);
        }

        output.WriteLine($"{sources.Count(s => s != ResponseSource.CacheHit)} of {Files} were not hits");
        sources.Should().AllBeEquivalentTo(ResponseSource.CacheHit,
            "a client that received every byte of a miss must find the file cached on its next request");
    }

    [Fact]
    public async Task A_purge_right_after_a_download_removes_the_file_from_the_cache()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, Durable);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var purges = new List<StatusCode>();

        for (var i = 0; i < Files; i++)
        {
            cluster.Root.Write($"f{i}.bin", Fetch.RandomBytes(1024 * 1024, seed: i));
            await Fetch.GetAsync(client, $"f{i}.bin", deadline.Token);
            purges.Add((await client.PurgeAsync($"f{i}.bin", deadline.Token)).Status);
        }
        await ProxyCache.FillsDoneAsync(cluster.ProxyPort, deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        output.WriteLine($"{purges.Count(s => s != StatusCode.Ok)} of {Files} purges missed");
        purges.Should().AllBeEquivalentTo(StatusCode.Ok);
        stats["entries"].Should().Be(0, "every downloaded file was purged");
    }
}
