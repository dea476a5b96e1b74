using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// One of the built programs (<c>dotnet FileProxy.X.dll ARGS</c>, copied next to the test assembly by the project
/// references) in a child process, run as a user runs it. Its output is kept line by line and copied to the test
/// output.
/// </summary>
public sealed class ChildProgram : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly List<(string Line, TaskCompletionSource Seen, Func<string, bool> Match)> _waiters = [];
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProgram(Process process) => _process = process;

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    public string Stdout
    {
        get
        {
            lock (_lock)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_lock)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Path of a built program's assembly: "Server", "Proxy" or "Client".</summary>
    public static string AssemblyOf(string program)
    {
        var dll = Path.Join(AppContext.BaseDirectory, $"FileProxy.{program}.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("the program is not next to the test assembly", dll);
    }

    /// <summary>Starts <c>dotnet FileProxy.<paramref name="program"/>.dll</c> with the arguments.</summary>
    public static ChildProgram Start(string program, ITestOutputHelper output, IEnumerable<string> arguments,
        string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        start.ArgumentList.Add(AssemblyOf(program));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        var child = new ChildProgram(new Process { StartInfo = start });
        var label = program.ToLowerInvariant();
        child._process.OutputDataReceived += (_, line) => child.Receive(line.Data, child._stdout, child._stdoutClosed, output, label);
        child._process.ErrorDataReceived += (_, line) => child.Receive(line.Data, child._stderr, child._stderrClosed, output, label);
        child._process.Start();
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Runs a program to its end and returns its exit code (output in <see cref="Stdout"/>, <see cref="Stderr"/>).</summary>
    public static async Task<ChildProgram> RunAsync(string program, ITestOutputHelper output, CancellationToken cancellationToken,
        params string[] arguments)
    {
        var child = Start(program, output, arguments);
        await child.WaitForExitAsync(cancellationToken);
        return child;
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>Waits for the process to end and for all its output to be read.</summary>
    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken);
        await Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task).WaitAsync(cancellationToken);
        return _process.ExitCode;
    }

    /// <summary>Waits for a line of output (either stream) that matches, and returns it; throws if the program ends
    /// without printing one.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, CancellationToken cancellationToken)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var waiter = (Line: "", Seen: seen, Match: match);
        lock (_lock)
        {
            var existing = (_stdout.ToString() + _stderr).Split('\n').FirstOrDefault(match);
            if (existing is not null)
            {
                return existing;
            }
            _waiters.Add(waiter);
        }
        var exited = Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task);
        if (await Task.WhenAny(seen.Task, exited).WaitAsync(cancellationToken) != seen.Task)
        {
            lock (_lock)
            {
                var late = (_stdout.ToString() + _stderr).Split('\n').FirstOrDefault(match);
                if (late is not null)
                {
                    return late;
                }
            }
            throw new InvalidOperationException($"the program ended (exit {_process.ExitCode}) without printing the line awaited");
        }
        lock (_lock)
        {
            return (_stdout.ToString() + _stderr).Split('\n').First(match);
        }
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        _process.Kill();
        await _process.WaitForExitAsync(cancellationToken);
    }

    /// <summary>SIGTERM, as a service manager stops a program.</summary>
    public void Terminate() => Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])?.WaitForExit();

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private void Receive(string? line, StringBuilder into, TaskCompletionSource closed, ITestOutputHelper output, string label)
    {
        if (line is null)
        {
            closed.TrySetResult();
            return;
        }
        lock (_lock)
        {
            into.Append(line).Append('\n');
            foreach (var waiter in _waiters.Where(waiter => waiter.Match(line)).ToList())
            {
                waiter.Seen.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
        try
        {
            output.WriteLine($"[{label} {_process.Id}] {line}");
        }
        catch (InvalidOperationException)
        {
            // The test already finished.
        }
    }
}
