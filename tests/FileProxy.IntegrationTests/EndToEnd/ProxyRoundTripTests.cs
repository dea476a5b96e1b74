using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

public sealed class ProxyRoundTripTests(ITestOutputHelper output)
{
    [Fact]
    public async Task First_request_is_a_miss_and_second_a_hit_with_identical_bytes()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(300_000, seed: 1);
        cluster.Root.Write("data.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var first = await Fetch.GetAsync(client, "data.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var second = await Fetch.GetAsync(client, "data.bin", deadline.Token);

        first.Head.Source.Should().Be(ResponseSource.CacheMiss);
        second.Head.Source.Should().Be(ResponseSource.CacheHit);
        first.Body.Should().Equal(content);
        second.Body.Should().Equal(content);
        second.Head.File!.Digest.Should().Be(ContentDigest.Of(content));
    }
}
