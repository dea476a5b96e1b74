using System.Globalization;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// The real proxy executable in a child process, for what only a real process can show, such as SIGKILL mid-fill.
/// It listens on a port the kernel picks (port 0) and the test reads that port from its log, so no port is ever
/// released and bound again. Its log goes to the test output.
/// </summary>
public sealed partial class ProxyProcess : IAsyncDisposable
{
    private ProxyProcess(ChildProgram program) => Program = program;

    public ChildProgram Program { get; }

    /// <summary>The port it listens on; known once <see cref="WaitUntilListeningAsync"/> returned.</summary>
    public int Port { get; private set; }

    public bool HasExited => Program.HasExited;

    /// <summary>Starts the proxy in front of 127.0.0.1:<paramref name="originPort"/> on a loopback port of its choosing.</summary>
    public static ProxyProcess Start(int originPort, string cacheDirectory, ITestOutputHelper output, params string[] extraArguments) =>
        new(ChildProgram.Start("Proxy", output,
            ["127.0.0.1", $"{originPort}", "0", "--listen", "127.0.0.1", "--cache-dir", cacheDirectory, "--log-level", "Debug", .. extraArguments]));

    /// <summary>Waits until the proxy logs the port it listens on; throws if it exits first.</summary>
    public async Task WaitUntilListeningAsync(CancellationToken cancellationToken)
    {
        var line = await Program.WaitForLineAsync(text => ListeningLine().IsMatch(text), cancellationToken);
        Port = int.Parse(ListeningLine().Match(line).Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public Task KillAsync(CancellationToken cancellationToken) => Program.KillAsync(cancellationToken);

    public ValueTask DisposeAsync() => Program.DisposeAsync();

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:([0-9]+)")]
    private static partial Regex ListeningLine();
}
