using System.Globalization;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

public sealed class ConcurrentClientsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Fifty_clients_fetching_fifty_different_files_at_once_all_get_their_exact_bytes()
    {
        const int Clients = 50;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var sizes = new Random(12);
        var files = Enumerable.Range(0, Clients)
            .Select(i => (Name: string.Create(CultureInfo.InvariantCulture, $"set/file-{i:D2}.bin"),
                Content: Fetch.RandomBytes(sizes.Next(0, 1_100_000), seed: 100 + i)))
            .ToArray();
        foreach (var (name, content) in files)
        {
            cluster.Root.Write(name, content);
        }
        var clients = await Task.WhenAll(files.Select(_ => cluster.ConnectProxyAsync(deadline.Token)));
        try
        {
            var misses = await Task.WhenAll(clients.Zip(files, (client, file) => Fetch.GetAsync(client, file.Name, deadline.Token)));
            await cluster.WaitForFillsAsync(deadline.Token);
            var hits = await Task.WhenAll(clients.Zip(files, (client, file) => Fetch.GetAsync(client, file.Name, deadline.Token)));

            for (var i = 0; i < Clients; i++)
            {
                var (name, content) = files[i];
                misses[i].Head.Source.Should().Be(ResponseSource.CacheMiss, name);
                misses[i].Body.Should().Equal(content, name);
                hits[i].Head.Source.Should().Be(ResponseSource.CacheHit, name);
                hits[i].Body.Should().Equal(content, name);
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["cache_misses"].Should().Be(Clients);
        stats["entries"].Should().Be(Clients);
    }
}
