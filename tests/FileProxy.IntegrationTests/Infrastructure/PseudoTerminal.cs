using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// The real client program run on a pseudo-terminal, as a user runs it in a terminal window: util-linux's
/// <c>script -q -e -c CMD /dev/null</c> gives it a pty for standard input, output and error (unless the command line
/// redirects one) and copies everything written to the pty onto its own standard output, which we collect as it
/// comes. <c>-e</c> makes script exit with the program's exit code.
/// </summary>
public sealed class PseudoTerminal : IAsyncDisposable
{
    private const string Script = "/usr/bin/script";
    private readonly Process _process;
    private readonly StringBuilder _screen = new();
    private readonly Lock _lock = new();
    private readonly Task _reading;

    private PseudoTerminal(Process process)
    {
        _process = process;
        _reading = ReadAsync();
    }

    /// <summary>Whether <c>script</c> is installed (util-linux, in every Debian).</summary>
    public static bool Available => File.Exists(Script);

    /// <summary>Everything the program wrote to the terminal so far, escape sequences included.</summary>
    public string Screen
    {
        get
        {
            lock (_lock)
            {
                return _screen.ToString();
            }
        }
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>Starts the built client with <paramref name="args"/> on a pty; <paramref name="redirect"/> is shell
    /// redirection text for the client (such as <c>2&gt;FILE</c>).</summary>
    public static PseudoTerminal StartClient(ITestOutputHelper output, string workingDirectory, IEnumerable<string> args,
        string redirect = "")
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var command = string.Join(' ', new[] { dotnet, ChildProgram.AssemblyOf("Client") }.Concat(args).Select(Quote)) + " " + redirect;
        output.WriteLine($"[pty] {command}");
        var start = new ProcessStartInfo(Script)
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in new[] { "-q", "-e", "-c", command, "/dev/null" })
        {
            start.ArgumentList.Add(argument);
        }
        return new PseudoTerminal(Process.Start(start)!);
    }

    /// <summary>Waits until the screen shows what <paramref name="seen"/> looks for; fails if the program ends
    /// first.</summary>
    public async Task WaitForAsync(Func<string, bool> seen, string what, CancellationToken cancellationToken)
    {
        await Poll.UntilAsync(() => seen(Screen) || _reading.IsCompleted, what, cancellationToken);
        if (!seen(Screen))
        {
            throw new InvalidOperationException($"the program ended without showing {what}; the screen:\n{Screen}");
        }
    }

    /// <summary>Waits for the program's end and for the last of its output.</summary>
    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken);
        await _reading.WaitAsync(cancellationToken);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private async Task ReadAsync()
    {
        var buffer = new char[4096];
        int read;
        while ((read = await _process.StandardOutput.ReadAsync(buffer)) > 0)
        {
            lock (_lock)
            {
                _screen.Append(buffer, 0, read);
            }
        }
    }

    private static string Quote(string argument) => "'" + argument.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
