using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// The real proxy executable in a child process (<c>dotnet FileProxy.Proxy.dll</c>, copied next to the test
/// assembly by the project reference), for what only a real process can show, such as SIGKILL mid-fill.
/// Its log goes to the test output.
/// </summary>
public sealed class ProxyProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ProxyProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts the proxy in front of 127.0.0.1:<paramref name="originPort"/> on a free loopback port.</summary>
    public static ProxyProcess Start(int originPort, string cacheDirectory, ITestOutputHelper output, params string[] extraArguments)
    {
        var dll = Path.Join(AppContext.BaseDirectory, "FileProxy.Proxy.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException("the proxy executable is not next to the test assembly", dll);
        }
        var port = FreeLoopbackPort();
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])[dll, "127.0.0.1", $"{originPort}", $"{port}", "--listen", "127.0.0.1",
            "--cache-dir", cacheDirectory, "--log-level", "Debug", .. extraArguments])
        {
            start.ArgumentList.Add(argument);
        }
        var process = new Process { StartInfo = start };
        DataReceivedEventHandler forward = (_, line) =>
        {
            if (line.Data is not null)
            {
                try
                {
                    output.WriteLine($"[proxy process :{port}] {line.Data}");
                }
                catch (InvalidOperationException)
                {
                    // The test already finished.
                }
            }
        };
        process.OutputDataReceived += forward;
        process.ErrorDataReceived += forward;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ProxyProcess(process, port);
    }

    /// <summary>Waits until the proxy accepts connections; throws if it exits first.</summary>
    public async Task WaitUntilListeningAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"the proxy process exited with code {_process.ExitCode} before listening");
            }
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port), cancellationToken);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
            }
        }
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        _process.Kill();
        await _process.WaitForExitAsync(cancellationToken);
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

    /// <summary>A port nobody listens on right now: bound to 0 and released.</summary>
    private static int FreeLoopbackPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
