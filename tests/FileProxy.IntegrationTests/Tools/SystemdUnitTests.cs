using System.Diagnostics;
using FileProxy.IntegrationTests.Infrastructure;

namespace FileProxy.IntegrationTests.Tools;

/// <summary>The example systemd units in docs/systemd are valid units for the real programs: systemd-analyze
/// verify accepts them (every directive known, the command executable) once ExecStart names this build.</summary>
public sealed class SystemdUnitTests
{
    [SkippableTheory]
    [InlineData("fileproxy-server.service", "FileProxy.Server.dll")]
    [InlineData("fileproxy-proxy.service", "FileProxy.Proxy.dll")]
    public async Task The_example_unit_verifies(string unit, string program)
    {
        Skip.If(!File.Exists("/usr/bin/systemd-analyze"), "systemd-analyze is not installed");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var work = new TempDirectory("fileproxy-units");
        var text = await File.ReadAllTextAsync(Repository.Combine("docs", "systemd", unit), deadline.Token);
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "/usr/bin/dotnet";
        var execStart = text.Split('\n').Single(line => line.StartsWith("ExecStart=", StringComparison.Ordinal));
        var arguments = execStart[(execStart.IndexOf(' ', StringComparison.Ordinal) + 1)..];
        var copy = Path.Join(work.Path, unit);
        await File.WriteAllTextAsync(copy,
            text.Replace(execStart, $"ExecStart={dotnet} {Path.Join(AppContext.BaseDirectory, program)} {arguments}", StringComparison.Ordinal),
            deadline.Token);

        using var verify = Process.Start(new ProcessStartInfo("/usr/bin/systemd-analyze", ["verify", copy])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        var errors = await verify.StandardError.ReadToEndAsync(deadline.Token);
        await verify.WaitForExitAsync(deadline.Token);

        verify.ExitCode.Should().Be(0, errors);
        errors.Should().BeEmpty();
    }
}
