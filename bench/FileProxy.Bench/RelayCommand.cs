using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using FileProxy.Hosting;

namespace FileProxy.Bench;

/// <summary>
/// <c>relay</c>: a TCP relay between a cache and its origin. The origin-to-cache direction can be throttled to one
/// rate shared by all connections, so every system under test sees the same slow origin. Counts the bytes relayed
/// and keeps them in a JSON stats file (rewritten every 100 ms and at exit) for bench/run.sh to read.
/// </summary>
internal static class RelayCommand
{
    public static Command Build()
    {
        var listen = HostPort.Option("--listen", "Address to listen on, e.g. 127.0.0.1:18011");
        var target = HostPort.Option("--target", "Origin to forward to, e.g. 127.0.0.1:18010");
        var rate = CommandLine.SizeOption("--rate", "Bytes per second from the origin, shared by all connections, e.g. 50MB (0: unlimited)", 0);
        var stats = new Option<FileInfo?>("--stats") { Description = "JSON file kept up to date with the byte and connection counts" };
        var command = new Command("relay", "TCP relay to an origin, optionally throttled to a total byte rate") { listen, target, rate, stats };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var relay = new ThrottledRelay(parse.GetValue(target), parse.GetValue(rate));
            var at = parse.GetValue(listen);
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(new IPEndPoint(IPAddress.Parse(at.Host), at.Port));
            listener.Listen(512);
            var statsPath = parse.GetValue(stats)?.FullName;
            var reporter = statsPath is null ? Task.CompletedTask : relay.ReportAsync(statsPath, cancellationToken);
            await relay.AcceptAsync(listener, cancellationToken);
            await reporter;
            return 0;
        });
        return command;
    }
}
