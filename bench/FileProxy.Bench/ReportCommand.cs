using System.CommandLine;
using System.Text.Json;

namespace FileProxy.Bench;

/// <summary>
/// <c>report</c>: reads the JSON lines bench/run.sh collected, takes the median of each figure over the runs, and
/// prints (and writes as Markdown and JSON) one table: ours, nginx, Varnish, ours divided by the better of the other
/// two, and the machine's limit where one applies.
/// </summary>
internal static class ReportCommand
{
    public static Command Build()
    {
        var results = new Option<FileInfo>("--results") { Description = "JSON lines written by bench/run.sh", Required = true };
        var output = new Option<DirectoryInfo?>("--out") { Description = "Directory for results.md and results.json" };
        var command = new Command("report", "Median table of a benchmark run, with ratios and machine limits") { results, output };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var lines = await File.ReadAllLinesAsync(parse.GetValue(results)!.FullName, cancellationToken);
            var records = lines.Where(line => line.Length > 0).Select(line => JsonDocument.Parse(line).RootElement).ToList();
            var report = BenchReport.Build(records);
            var markdown = report.ToMarkdown();
            Console.Out.Write(markdown);
            if (parse.GetValue(output) is { } directory)
            {
                directory.Create();
                await File.WriteAllTextAsync(Path.Join(directory.FullName, "results.md"), markdown, cancellationToken);
                await File.WriteAllTextAsync(Path.Join(directory.FullName, "results.json"), report.ToJson(), cancellationToken);
            }
            return report.Warnings.Count == 0 ? 0 : 3;
        });
        return command;
    }
}
