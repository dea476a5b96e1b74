using FileProxy.Client;
using FileProxy.Hosting;

var command = ClientCommands.Build();
return await CommandLine.RunAsync(command, args);
