using FileProxy.Client;
using FileProxy.Protocol.Hosting;

var command = ClientCommands.Build();
return await CommandLine.RunAsync(command, args);
