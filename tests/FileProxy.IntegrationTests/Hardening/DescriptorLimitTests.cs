using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Hardening;

/// <summary>
/// A server out of file descriptors must neither spin nor die. Before the fix, the real server under a limit of
/// 160 with 400 connections logged a stack trace per failed accept (about 20,000 lines a second) at a full core,
/// and when the limit was hit right after start the process died with "Out of memory." (3 of 3 runs).
/// </summary>
public sealed partial class DescriptorLimitTests(ITestOutputHelper output)
{
    private const int DescriptorLimit = 160;
    private const int FloodConnections = 400;
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(3);

    [SkippableFact]
    public async Task Out_of_descriptors_the_server_logs_little_stays_idle_and_serves_again_after_the_flood()
    {
        Skip.IfNot(File.Exists("/bin/sh") && Directory.Exists("/proc/self"), "needs /bin/sh and /proc");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        var content = Fetch.RandomBytes(1000, seed: 160);
        root.Write("a.bin", content);

        var lines = new ConcurrentQueue<(long Tick, string Line)>();
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var server = StartServerUnderLimit(root.Path, lines, listening);
        try
        {
            var port = await listening.Task.WaitAsync(deadline.Token);

            // The flood arrives the moment the server listens: the case that killed it.
            var flood = new List<Socket>();
            try
            {
                for (var i = 0; i < FloodConnections; i++)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    flood.Add(socket);
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), deadline.Token);
                }
                var cpuBefore = CpuTicks(server.Id);
                var windowStart = Environment.TickCount64;
                await Task.Delay(Window, deadline.Token);
                var windowEnd = Environment.TickCount64;
                var cpuMs = (CpuTicks(server.Id) - cpuBefore) * 1000.0 / 100; // USER_HZ is 100 on Linux
                var linesInWindow = lines.Count(line => line.Tick >= windowStart && line.Tick < windowEnd);
                output.WriteLine($"in {Window.TotalSeconds} s under the flood: {linesInWindow} log lines, {cpuMs:0} ms of CPU");

                server.HasExited.Should().BeFalse("running out of descriptors must not kill the server");
                linesInWindow.Should().BeLessThan(20, "failed accepts are logged once per interval, not once each");
                cpuMs.Should().BeLessThan(Window.TotalMilliseconds / 2, "a failed accept pauses instead of retrying at once");
            }
            finally
            {
                foreach (var socket in flood)
                {
                    socket.Dispose();
                }
            }

            // The flood is gone: a normal client is served. The flood's connections still queued in the backlog are
            // accepted and closed first, and meanwhile a new one may be answered Busy, as a client then retries.
            var busy = 0;
            Fetch.Result result;
            while (true)
            {
                await using var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: deadline.Token);
                result = await Fetch.GetAsync(client, "a.bin", deadline.Token);
                if (result.Head.Status != Protocol.Wire.StatusCode.Busy)
                {
                    break;
                }
                busy++;
                await Task.Delay(TimeSpan.FromMilliseconds(50), deadline.Token);
            }
            output.WriteLine($"after the flood: served after {busy} Busy answers");
            result.Head.Status.Should().Be(Protocol.Wire.StatusCode.Ok);
            result.Body.Should().Equal(content);
            server.HasExited.Should().BeFalse();
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill();
            }
            await server.WaitForExitAsync(CancellationToken.None);
            foreach (var (_, line) in lines.Take(200))
            {
                output.WriteLine($"[server] {line}");
            }
            output.WriteLine($"[server] {lines.Count} lines in all; exit code {server.ExitCode}");
        }
    }

    /// <summary>The real server in a child process whose descriptor limit (soft and hard) is 160, on port 0;
    /// the port is read back from its "Listening on" line, so no port is released and bound again.</summary>
    private static Process StartServerUnderLimit(string root, ConcurrentQueue<(long, string)> lines, TaskCompletionSource<int> listening)
    {
        var dll = Path.Join(AppContext.BaseDirectory, "FileProxy.Server.dll");
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["-c", $"ulimit -n {DescriptorLimit} && exec \"$0\" \"$@\"",
            Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", dll,
            "--root", root, "--port", "0", "--listen", "127.0.0.1"])
        {
            start.ArgumentList.Add(argument);
        }
        var process = new Process { StartInfo = start };
        DataReceivedEventHandler collect = (_, line) =>
        {
            if (line.Data is null)
            {
                return;
            }
            lines.Enqueue((Environment.TickCount64, line.Data));
            if (ListeningLine().Match(line.Data) is { Success: true } match)
            {
                listening.TrySetResult(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        };
        process.OutputDataReceived += collect;
        process.ErrorDataReceived += collect;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException("the server exited before listening"));
        process.EnableRaisingEvents = true;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>User plus system CPU time of a process, in clock ticks, from /proc/PID/stat.</summary>
    private static long CpuTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
        return long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture)
            + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();
}
