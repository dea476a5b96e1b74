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

    /// <summary>Waits until the proxy runs no fill (a failed fill leaves the index a moment after its error).</summary>
    public static Task WaitForFillsAsync(this Cluster cluster, CancellationToken cancellationToken) =>
        Poll.UntilAsync(() => FillsInProgress(cluster) == 0, "every fill has committed or failed", cancellationToken);

    /// <summary>Every file under the cache directory, relative to it (empty directories do not count).</summary>
    public static IReadOnlyList<string> FilesInCache(this Cluster cluster) =>
        [.. Directory.EnumerateFiles(cluster.CacheDirectory.Path, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(cluster.CacheDirectory.Path, path))
            .Where(path => path is not ("lock" or "CACHEDIR.TAG"))];

    /// <summary>Every file under the directory, relative to it (empty directories do not count).</summary>
    public static IReadOnlyList<string> Files(this TempDirectory directory) =>
        [.. Directory.EnumerateFiles(directory.Path, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(directory.Path, path))];

    private static long FillsInProgress(Cluster cluster) =>
        cluster.Cache.Counters.Single(counter => counter.Key == "fills_in_progress").Value;
}
