using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>What one run of the real client program did.</summary>
public sealed record ClientRun(int ExitCode, byte[] StandardOutput, string StandardError);

/// <summary>
/// The real client executable in a child process (<c>dotnet FileProxy.Client.dll</c>), run as a user runs it from a
/// shell, for what only a real process shows: its standard output as a pipe or a redirect, its exit code.
/// </summary>
public static class ClientProcess
{
    /// <summary>Runs the client with <paramref name="args"/>. <paramref name="redirect"/> is shell redirection text
    /// (such as <c>&gt; /dev/full</c>) applied to the process; <paramref name="readStdoutBytes"/> closes our end of its
    /// standard output after that many bytes, as <c>| head -c N</c> does.</summary>
    public static async Task<ClientRun> RunAsync(ITestOutputHelper output, string[] args, CancellationToken cancellationToken,
        string redirect = "", long readStdoutBytes = long.MaxValue)
    {
        var dll = Path.Join(AppContext.BaseDirectory, "FileProxy.Client.dll");
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"exec \"$0\" \"$@\" {redirect}");
        start.ArgumentList.Add(dotnet);
        start.ArgumentList.Add(dll);
        foreach (var argument in args)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        var stdout = ReadAsync(process.StandardOutput.BaseStream, readStdoutBytes, cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        var run = new ClientRun(process.ExitCode, await stdout, await stderr);
        output.WriteLine($"[client {string.Join(' ', args)} {redirect}] exit {run.ExitCode}, {run.StandardOutput.Length} bytes out");
        output.WriteLine(run.StandardError);
        return run;
    }

    private static async Task<byte[]> ReadAsync(Stream stream, long limit, CancellationToken cancellationToken)
    {
        using var collected = new MemoryStream();
        var buffer = new byte[64 * 1024];
        await using (stream)
        {
            while (collected.Length < limit)
            {
                var read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, limit - collected.Length)), cancellationToken);
                if (read == 0)
                {
                    break;
                }
                collected.Write(buffer, 0, read);
            }
        }
        return collected.ToArray();
    }

    /// <summary>The client's standard error as text lines.</summary>
    public static string[] Lines(this ClientRun run) =>
        run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Standard output as UTF-8 text.</summary>
    public static string Text(this ClientRun run) => Encoding.UTF8.GetString(run.StandardOutput);
}
