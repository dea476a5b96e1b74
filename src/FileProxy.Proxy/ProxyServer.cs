using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Proxy.Cache;
using Serilog;

namespace FileProxy.Proxy;

/// <summary>The proxy: a <see cref="ProtocolServer"/> over a <see cref="CacheSource"/> whose upstream side is the
/// same <see cref="FileClient"/> the client program uses.</summary>
public static class ProxyServer
{
    public const int DefaultPort = 5000;

    public static (ProtocolServer Server, CacheSource Cache) Create(string upstreamHost, int upstreamPort,
        CacheOptions cache, ProtocolServerOptions server, FileClientOptions? upstream = null, ILogger? log = null)
    {
        var pool = new FileClientPool(upstreamHost, upstreamPort, upstream);
        var source = new CacheSource(cache, pool, log);
        ProtocolServer listening;
        try
        {
            // Bind first: a taken port is reported at once, not after a scan of a large cache.
            listening = new ProtocolServer(source, server, log);
        }
        catch
        {
            source.ReleaseDirectory(); // nothing ran yet: only the directory's lock to give back
            throw;
        }
        source.LoadIndex();
        source.WarmUpstream();
        return (listening, source);
    }
}
