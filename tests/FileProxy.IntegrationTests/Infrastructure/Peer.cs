using FileProxy.Protocol.Client;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>Which server of a <see cref="Cluster"/> a test talks to.</summary>
public enum Peer
{
    Origin,
    Proxy,
}

/// <summary>Reaching either server of a <see cref="Cluster"/>, and looking at what the proxy left on disk.</summary>
public static class PeerConnections
{
    public static Task<FileClient> ConnectAsync(this Cluster cluster, Peer peer, CancellationToken cancellationToken) =>
        peer == Peer.Proxy ? cluster.ConnectProxyAsync(cancellationToken) : cluster.ConnectOriginAsync(cancellationToken);

    public static int PortOf(this Cluster cluster, Peer peer) => peer == Peer.Proxy ? cluster.ProxyPort : cluster.OriginPort;

    /// <summary>
    /// Waits until the proxy runs no fill, so that the next request for a name fetched before is a hit. A client
    /// can read a miss's last byte before the fill that sent it has verified and committed the file; a request
    /// sent right then joins that fill (<c>CacheCoalesced</c>) instead of hitting the cache.
    /// </summary>
    public static async Task WaitForFillsAsync(this Cluster cluster, CancellationToken cancellationToken)
    {
        await Polling.UntilAsync(() => FillsInProgress(cluster) == 0, TimeSpan.FromSeconds(5), cancellationToken);
        FillsInProgress(cluster).Should().Be(0, "every fill should have committed or failed by now");
    }

    /// <summary>Every file under the cache directory, relative to it (empty directories do not count).</summary>
    public static IReadOnlyList<string> FilesInCache(this Cluster cluster) =>
        [.. Directory.EnumerateFiles(cluster.CacheDirectory.Path, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(cluster.CacheDirectory.Path, path))];

    /// <summary>Every file under the directory, relative to it (empty directories do not count).</summary>
    public static IReadOnlyList<string> Files(this TempDirectory directory) =>
        [.. Directory.EnumerateFiles(directory.Path, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(directory.Path, path))];

    private static long FillsInProgress(Cluster cluster) =>
        cluster.Cache.Counters.Single(counter => counter.Key == "fills_in_progress").Value;
}
