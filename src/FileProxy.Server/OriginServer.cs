using System.Net;
using FileProxy.Protocol.Server;
using Serilog;

namespace FileProxy.Server;

/// <summary>The origin: a <see cref="ProtocolServer"/> over a <see cref="DirectorySource"/>.</summary>
public static class OriginServer
{
    public const int DefaultPort = 5010;

    public static ProtocolServer Create(string root, ProtocolServerOptions options, ILogger? log = null)
    {
        var source = new DirectorySource(root, log);
        var server = new ProtocolServer(source, options, log);
        (log ?? Log.Logger).Information("Serving {Root}", source.Root);
        return server;
    }

    public static ProtocolServerOptions Loopback(int port = 0) => new() { EndPoint = new IPEndPoint(IPAddress.Loopback, port) };
}
