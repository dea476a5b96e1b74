using System.CommandLine;
using System.Net;
using FileProxy.Protocol.Hosting;
using FileProxy.Protocol.Server;
using FileProxy.Server;

var root = new Option<DirectoryInfo>("--root")
{
    Description = "Directory whose files are served (default: the current directory)",
    DefaultValueFactory = _ => new DirectoryInfo(Directory.GetCurrentDirectory()),
};
var port = CommandLine.PortOption("--port", "TCP port to listen on", OriginServer.DefaultPort);
var listen = CommandLine.ListenAddressOption();
var maxConnections = new Option<int>("--max-connections")
{
    Description = "Connections served at once; more are answered Busy",
    DefaultValueFactory = _ => 4096,
};
var maxPerAddress = CommandLine.MaxConnectionsPerAddressOption();
var drain = CommandLine.DurationOption("--drain-timeout", "On Ctrl+C/SIGTERM, how long running transfers may finish", TimeSpan.FromSeconds(10));
var mptcp = new Option<bool>("--mptcp") { Description = "Listen on a Linux MPTCP socket (TCP clients still connect)" };
var logLevel = CommandLine.LogLevelOption();

var command = new RootCommand("FileProxy origin server: serves the files under a directory over the FileProxy protocol.")
{
    root, port, listen, maxConnections, maxPerAddress, drain, mptcp, logLevel,
};
command.SetAction((parse, cancellationToken) => CommandLine.RunServerAsync(parse.GetValue(logLevel), () =>
{
    var options = new ProtocolServerOptions
    {
        EndPoint = new IPEndPoint(parse.GetValue(listen)!, parse.GetValue(port)),
        MaxConnections = parse.GetValue(maxConnections),
        MaxConnectionsPerAddress = parse.GetValue(maxPerAddress),
        DrainTimeout = parse.GetValue(drain),
        Mptcp = parse.GetValue(mptcp),
    };
    return (OriginServer.Create(parse.GetValue(root)!.FullName, options), null);
}, cancellationToken));
return await CommandLine.RunAsync(command, args);
