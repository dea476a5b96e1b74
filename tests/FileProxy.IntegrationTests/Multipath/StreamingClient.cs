using System.Diagnostics;
using System.Text;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Multipath;

/// <summary>The real client run in a test network's client namespace, whose output can be watched while it runs
/// (to change the network at a given point of a transfer).</summary>
public sealed class StreamingClient : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly ITestOutputHelper _log;

    private StreamingClient(Process process, ITestOutputHelper log)
    {
        _process = process;
        _log = log;
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static StreamingClient Start(Testbed testbed, ITestOutputHelper log, params string[] args)
    {
        var start = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = testbed.Work.Path,
        };
        foreach (var argument in (string[])["netns", "exec", $"{testbed.Prefix}-cli",
                     Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
                     Path.Join(AppContext.BaseDirectory, "FileProxy.Client.dll"), .. args])
        {
            start.ArgumentList.Add(argument);
        }
        var process = new Process { StartInfo = start };
        var client = new StreamingClient(process, log);
        DataReceivedEventHandler forward = (_, line) =>
        {
            if (line.Data is null)
            {
                return;
            }
            lock (client._output)
            {
                client._output.AppendLine(line.Data);
            }
            try
            {
                log.WriteLine($"[client] {line.Data}");
            }
            catch (InvalidOperationException)
            {
                // The test already finished.
            }
        };
        process.OutputDataReceived += forward;
        process.ErrorDataReceived += forward;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return client;
    }

    public Task WaitForOutputAsync(string text, CancellationToken cancellationToken) =>
        Poll.UntilAsync(() => Output.Contains(text, StringComparison.Ordinal) || _process.HasExited,
            $"the client wrote '{text}'", cancellationToken);

    /// <summary>Waits for the client to exit; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken);
        _process.WaitForExit(); // the last output lines
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
        _ = _log;
    }
}
