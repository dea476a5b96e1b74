using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class CoalescingTests(ITestOutputHelper output)
{
    private const int FileBytes = 50 * 1024 * 1024;
    private const int Clients = 100;
    private const int HeldAfterBytes = 4 * 1024 * 1024;

    [Fact]
    public async Task One_cold_file_asked_for_by_100_clients_is_fetched_once_and_streamed_to_all_while_it_fills()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        var content = Fetch.RandomBytes(FileBytes, seed: 50);
        cluster.Root.Write("big.bin", content);
        var hold = origin.Hold("big.bin", HeldAfterBytes);

        var firstBytes = Enumerable.Range(0, Clients)
            .Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var downloads = firstBytes.Select(signal => DownloadAsync(cluster.ProxyPort, content, signal, deadline.Token)).ToArray();
        await Task.WhenAll(firstBytes.Select(signal => signal.Task)).WaitAsync(deadline.Token);

        // Every client holds body bytes while the origin still withholds all but the first part: the fill runs.
        var duringFill = await cluster.ProxyStatsAsync(deadline.Token);
        hold.Release();
        var results = await Task.WhenAll(downloads);
        var after = await cluster.ProxyStatsAsync(deadline.Token);

        duringFill["fills_in_progress"].Should().Be(1, "no client can have finished while the origin was held");
        results.Should().OnlyContain(r => r.Received == FileBytes && r.Exact, "every copy must be byte-exact");
        results.Count(r => r.Source == ResponseSource.CacheMiss).Should().Be(1);
        results.Count(r => r.Source == ResponseSource.CacheCoalesced).Should().Be(Clients - 1);
        after["upstream_fetches"].Should().Be(1);
        after["coalesced_requests"].Should().Be(Clients - 1);
        origin.Gets("big.bin").Should().Be(1);
    }

    private sealed record Download(ResponseSource Source, long Received, bool Exact);

    /// <summary>Downloads the file, comparing each chunk with the expected bytes as it arrives (no copy kept), and
    /// signals after the first body chunk.</summary>
    private static async Task<Download> DownloadAsync(int port, byte[] expected, TaskCompletionSource firstBytes, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Yield();
            await using var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: cancellationToken);
            await using var response = await client.GetAsync(new GetRequest("big.bin"), cancellationToken);
            if (!response.Head.IsOk)
            {
                throw new InvalidOperationException($"GET answered {response.Head.Status}: {response.Head.Message}");
            }
            var buffer = new byte[256 * 1024];
            var position = 0;
            var exact = true;
            int read;
            while ((read = await response.ReadAsync(buffer, cancellationToken)) > 0)
            {
                exact &= position + read <= expected.Length && buffer.AsSpan(0, read).SequenceEqual(expected.AsSpan(position, read));
                position += read;
                firstBytes.TrySetResult();
            }
            return new Download(response.Head.Source, position, exact);
        }
        catch (Exception e)
        {
            firstBytes.TrySetException(e);
            throw;
        }
    }
}
