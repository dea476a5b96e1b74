using System.CommandLine;
using FileProxy.Bench;
using FileProxy.Hosting;

var root = new RootCommand("FileProxy benchmark tool: load generators, a throttling relay and the report for bench/run.sh.")
{
    GetCommand.Build(),
    LoadCommand.Build(),
    RelayCommand.Build(),
    TierCommand.Build(),
    ReportCommand.Build(),
};
return await CommandLine.RunAsync(root, args);
