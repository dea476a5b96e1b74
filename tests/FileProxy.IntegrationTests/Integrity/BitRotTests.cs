using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Integrity;

/// <summary>A cached file damaged on disk at its full size (bit rot, or data a power cut kept from the disk) is
/// never served after a restart: the proxy checks the digest of every entry found on disk on its first use.</summary>
public sealed class BitRotTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_same_size_corrupted_entry_is_dropped_and_fetched_again_after_a_restart()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(200_000, seed: 11);
        cluster.Root.Write("rot.bin", content);
        await using (var client = await cluster.ConnectProxyAsync(deadline.Token))
        {
            await ProxyCache.WarmAsync(cluster, client, "rot.bin", deadline.Token);
        }
        await cluster.StopProxyAsync();
        var data = new CacheDirectoryView(cluster.CacheDirectory.Path).DataFiles.Should().ContainSingle().Subject;
        var bytes = await File.ReadAllBytesAsync(data, deadline.Token);
        bytes[100_000] ^= 0x40;
        await File.WriteAllBytesAsync(data, bytes, deadline.Token);

        cluster.StartProxy();
        await using var again = await cluster.ConnectProxyAsync(deadline.Token);
        var result = await Fetch.GetAsync(again, "rot.bin", deadline.Token);

        result.Head.Source.Should().Be(ResponseSource.CacheMiss, "the damaged entry must be dropped, not served");
        result.Body.Should().Equal(content);
    }

    [Fact]
    public async Task A_corrupted_entry_is_not_served_even_when_the_origin_is_down()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("rot.bin", Fetch.RandomBytes(50_000, seed: 12));
        await using (var client = await cluster.ConnectProxyAsync(deadline.Token))
        {
            await ProxyCache.WarmAsync(cluster, client, "rot.bin", deadline.Token);
        }
        await cluster.StopProxyAsync();
        await cluster.StopOriginAsync();
        var data = new CacheDirectoryView(cluster.CacheDirectory.Path).DataFiles.Should().ContainSingle().Subject;
        var bytes = await File.ReadAllBytesAsync(data, deadline.Token);
        bytes[0] ^= 0x01;
        await File.WriteAllBytesAsync(data, bytes, deadline.Token);

        cluster.StartProxy();
        await using var again = await cluster.ConnectProxyAsync(deadline.Token);
        var result = await Fetch.GetAsync(again, "rot.bin", deadline.Token);

        result.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        new CacheDirectoryView(cluster.CacheDirectory.Path).DataFiles.Should().BeEmpty();
    }
}
