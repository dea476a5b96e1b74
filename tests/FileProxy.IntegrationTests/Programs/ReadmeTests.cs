using System.Text.RegularExpressions;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Programs;

/// <summary>The README's option tables against each built program's help, whose defaults are the parser's own
/// (System.CommandLine prints the value the parser takes when the option is left out).</summary>
public sealed partial class ReadmeTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("Server", "## Server")]
    [InlineData("Proxy", "## Proxy")]
    [InlineData("Client", "## Client")]
    public async Task Every_option_is_documented_with_the_default_the_parser_takes(string program, string section)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var readme = File.ReadAllText(Repository.Combine("README.md"));
        var documented = Table(readme, section);
        var serverTable = Table(readme, "## Server");

        var help = await ChildProgram.RunAsync(program, output, deadline.Token, "--help");

        help.ExitCode.Should().Be(0);
        var options = HelpOptions(help.Stdout);
        options.Should().NotBeEmpty();
        foreach (var (option, isFlag, shownDefault, description) in options)
        {
            documented.Should().ContainKey(option, "every option in {0}'s help is in the README table", program);
            var readmeDefault = documented[option];
            if (readmeDefault.Length == 0 && serverTable.TryGetValue(option, out var asForServer))
            {
                readmeDefault = asForServer; // "as for the server"
            }
            if (shownDefault is not null)
            {
                readmeDefault.Should().BeEquivalentTo(shownDefault, "the README's default for {0} {1} is the parsed one", program, option);
            }
            else if (isFlag)
            {
                readmeDefault.Should().Be("off", "{0} {1} is a flag", program, option);
            }
            else
            {
                description.Should().Contain("(default: " + readmeDefault, "{0} {1} has no value by default and says so", program, option);
            }
        }
    }

    /// <summary>Options of a help text: name, whether it is a flag, the default shown, the description.</summary>
    private static List<(string Option, bool IsFlag, string? Default, string Description)> HelpOptions(string help)
    {
        var options = new List<(string, bool, string?, string)>();
        var inOptions = false;
        foreach (var line in help.Split('\n'))
        {
            if (line.StartsWith("Options:", StringComparison.Ordinal))
            {
                inOptions = true;
                continue;
            }
            if (inOptions && line.Trim().Length == 0)
            {
                break;
            }
            var match = inOptions ? HelpOptionLine().Match(line) : Match.Empty;
            if (match.Success && match.Groups["name"].Value is not ("--help" or "--version"))
            {
                var defaultMatch = DefaultShown().Match(match.Groups["text"].Value);
                options.Add((match.Groups["name"].Value, !match.Groups["value"].Success,
                    defaultMatch.Success ? defaultMatch.Groups[1].Value : null, match.Groups["text"].Value));
            }
        }
        return options;
    }

    /// <summary>The tables of a section (up to the next '## ' heading): each option or argument named in the first
    /// column, with the second column (backticks and a leading "./" removed).</summary>
    private static Dictionary<string, string> Table(string readme, string heading)
    {
        var start = readme.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        start.Should().BePositive("the README has a '{0}' section", heading);
        var rows = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in readme[(start + heading.Length + 2)..].Split('\n'))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                break;
            }
            if (!line.StartsWith('|'))
            {
                continue;
            }
            var cells = line.Split('|');
            var value = cells[2].Trim().Replace("`", "", StringComparison.Ordinal);
            value = value.StartsWith("./", StringComparison.Ordinal) ? value[2..] : value;
            foreach (Match name in OptionName().Matches(cells[1]))
            {
                rows[name.Value] = value;
            }
        }
        return rows;
    }

    [GeneratedRegex(@"^\s+(?:-\S+, )*(?<name>--[a-z-]+)(?<value> <[^>]+>)?\s{2,}(?<text>.*)$")]
    private static partial Regex HelpOptionLine();

    [GeneratedRegex(@"\[default: ([^\]]*)\]\s*$")]
    private static partial Regex DefaultShown();

    [GeneratedRegex(@"--[a-z][a-z-]*")]
    private static partial Regex OptionName();
}
