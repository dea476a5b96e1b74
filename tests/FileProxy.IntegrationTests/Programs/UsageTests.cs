using System.Globalization;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Programs;

/// <summary>The built programs' command lines, run as a user runs them: what is refused, and how.</summary>
public sealed class UsageTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("--alow-purge", "--allow-purge")]
    [InlineData("--no-fsnyc", "--no-fsync")]
    [InlineData("--cache-dri", "--cache-dir")]
    [InlineData("--serve-stale-on-eror", "--serve-stale-on-error")]
    public async Task A_mistyped_proxy_option_is_a_usage_error_that_names_the_option_meant(string typed, string meant)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var cache = new TempDirectory("fileproxy-cache");

        var proxy = await ChildProgram.RunAsync("Proxy", output, deadline.Token, typed, "x", "--cache-dir", cache.Path, "--port", "0");

        proxy.ExitCode.Should().Be(2);
        proxy.Stderr.Should().Contain($"unknown option '{typed}' (did you mean '{meant}'?)");
        proxy.Stderr.Should().NotContain("Upstream", "a mistyped option must never become the upstream host");
        proxy.Stderr.Should().NotContain("is not a port number");
    }

    [Theory]
    [InlineData("--cache-max-size", "10", "GB")]
    [InlineData("--upstream-host", "bad_host!")]
    [InlineData("-x")]
    [InlineData("999.1.1.1")]
    public async Task A_proxy_upstream_that_is_not_a_host_is_a_usage_error_before_start(params string[] arguments)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var cache = new TempDirectory("fileproxy-cache");

        var proxy = await ChildProgram.RunAsync("Proxy", output, deadline.Token, [.. arguments, "--cache-dir", cache.Path, "--port", "0"]);

        proxy.ExitCode.Should().Be(2);
        proxy.Stderr.Should().StartWith("error: ").And.Contain("--help' for usage.");
        proxy.Stderr.Should().NotContain("Listening");
    }

    [Fact]
    public async Task A_size_written_with_a_space_is_explained()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var proxy = await ChildProgram.RunAsync("Proxy", output, deadline.Token, "--cache-max-size", "10", "GB");

        proxy.ExitCode.Should().Be(2);
        proxy.Stderr.Should().Contain("'GB' is a size unit, not a host (write sizes without a space: 10GB)");
    }

    [Theory]
    [InlineData("Server", "--prot", "--port")]
    [InlineData("Client", "--proxi", "--proxy")]
    [InlineData("Client", "--ofset", "--offset")]
    public async Task Server_and_client_offer_the_option_meant_too(string program, string typed, string meant)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var child = await ChildProgram.RunAsync(program, output, deadline.Token, "name.bin", typed, "5");

        child.ExitCode.Should().Be(2);
        child.Stderr.Should().Contain($"unknown option '{typed}' (did you mean '{meant}'?)");
    }

    [Fact]
    public async Task A_client_subcommand_error_names_the_command_as_invoked()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var client = await ChildProgram.RunAsync("Client", output, deadline.Token, "stat", "--prxy", "x", "name");

        client.ExitCode.Should().Be(2);
        var invoked = $"dotnet {Path.GetRelativePath(Environment.CurrentDirectory, ChildProgram.AssemblyOf("Client"))}";
        client.Stderr.Should().Contain($"Try '{invoked} stat --help' for usage.").And.NotContain("Try 'FileProxy.Client");
    }

    [Theory]
    [InlineData("info")]
    [InlineData("INFO")]
    [InlineData("warn")]
    [InlineData("debug")]
    [InlineData("Warning")]
    [InlineData("error")]
    public async Task The_log_level_takes_any_case_and_short_forms(string level)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var closed = new OwnedPort();

        var client = await ChildProgram.RunAsync("Client", output, deadline.Token,
            "stats", "--proxy", $"127.0.0.1:{closed.Port.ToString(CultureInfo.InvariantCulture)}", "--log-level", level);

        client.ExitCode.Should().Be(5, "the command line parsed and nothing listens at that port");
        client.Stderr.Should().NotContain("Serilog");
    }

    [Fact]
    public async Task An_unknown_log_level_lists_the_levels_without_a_type_name()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var server = await ChildProgram.RunAsync("Server", output, deadline.Token, "--log-level", "loud");

        server.ExitCode.Should().Be(2);
        server.Stderr.Should().Contain("'loud' is not a log level (verbose, debug, info, warn, error, fatal)").And.NotContain("Serilog");
    }

    [Fact]
    public async Task Help_shows_defaults_the_parser_takes_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var proxy = await ChildProgram.RunAsync("Proxy", output, deadline.Token, "--help");
        var server = await ChildProgram.RunAsync("Server", output, deadline.Token, "--help");

        proxy.Stdout.Should().Contain("[default: 1m]").And.Contain("[default: 10s]").And.NotContain("00:0");
        HelpLine(proxy.Stdout, "--serve-stale-on-error").Should().Contain("<true|false>").And.Contain("[default: true]");
        var rootLine = HelpLine(server.Stdout, "--root");
        rootLine.Split("default").Should().HaveCount(2, "the default is shown once: {0}", rootLine);
        var again = await ChildProgram.RunAsync("Proxy", output, deadline.Token, "--revalidate-after", "1m", "--drain-timeout", "10s", "--help");
        again.ExitCode.Should().Be(0);
    }

    [Fact]
    public async Task Client_stat_help_shows_its_own_usage_line()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var client = await ChildProgram.RunAsync("Client", output, deadline.Token, "stat", "--help");

        client.ExitCode.Should().Be(0);
        client.Stdout.Should().Contain("FileProxy.Client stat <NAME> [options]").And.NotContain("<NAME> stat");
    }

    [Fact]
    public async Task A_file_named_with_a_leading_dash_is_fetched_after_a_double_dash()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var closed = new OwnedPort();

        var dashed = await ChildProgram.RunAsync("Client", output, deadline.Token,
            "--proxy", $"127.0.0.1:{closed.Port.ToString(CultureInfo.InvariantCulture)}", "--", "-dash.bin");
        var unknown = await ChildProgram.RunAsync("Client", output, deadline.Token,
            "--proxy", $"127.0.0.1:{closed.Port.ToString(CultureInfo.InvariantCulture)}", "-dash.bin");

        dashed.ExitCode.Should().Be(5, "'-dash.bin' after '--' is a name; the fetch then fails to connect");
        unknown.ExitCode.Should().Be(2, "'-dash.bin' before '--' is an option, an unknown one");
    }

    private static string HelpLine(string help, string option) =>
        help.Split('\n').Single(line => line.TrimStart().StartsWith(option + " ", StringComparison.Ordinal));
}
