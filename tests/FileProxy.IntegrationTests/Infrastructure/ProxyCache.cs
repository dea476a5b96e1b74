using FileProxy.Protocol.Client;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Puts files into a test proxy's cache. A requester can receive its last byte a moment before the fill is
/// committed (the proxy verifies the digest, may fsync, then commits), so a test that expects the next request to
/// be a hit first waits for the fill to leave the proxy's index.
/// </summary>
public static class ProxyCache
{
    /// <summary>GETs <paramref name="name"/> through the proxy and waits until no fill is running any more.</summary>
    public static async Task<Fetch.Result> WarmAsync(Cluster cluster, FileClient client, string name, CancellationToken cancellationToken)
    {
        var result = await Fetch.GetAsync(client, name, cancellationToken);
        await FillsDoneAsync(cluster.ProxyPort, cancellationToken);
        return result;
    }

    /// <summary>Waits until the proxy on <paramref name="port"/> reports no fill in progress.</summary>
    public static Task FillsDoneAsync(int port, CancellationToken cancellationToken) =>
        Poll.UntilAsync(async () => (await StatsAsync(port, cancellationToken))["fills_in_progress"] == 0,
            "the proxy has no fill in progress", cancellationToken);

    /// <summary>The STATS counters of the server on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<Dictionary<string, long>> StatsAsync(int port, CancellationToken cancellationToken)
    {
        await using var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: cancellationToken);
        var head = await client.StatsAsync(cancellationToken);
        return head.Counters.ToDictionary(pair => pair.Key, pair => pair.Value);
    }
}
