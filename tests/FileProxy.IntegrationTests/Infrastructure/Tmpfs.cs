using System.Diagnostics;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>A small tmpfs mounted on a fresh directory, for a disk that really fills up. Needs root (CI runs as root);
/// <see cref="TryMount"/> says why not where it cannot.</summary>
public sealed class Tmpfs : IDisposable
{
    private readonly TempDirectory _directory;

    private Tmpfs(TempDirectory directory) => _directory = directory;

    public string Path => _directory.Path;

    public static Tmpfs? TryMount(string size, out string whyNot)
    {
        var directory = new TempDirectory("fileproxy-tmpfs");
        var (code, error) = Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", directory.Path);
        if (code != 0)
        {
            directory.Dispose();
            whyNot = $"cannot mount a tmpfs (needs root): {error.Trim()}";
            return null;
        }
        whyNot = "";
        return new Tmpfs(directory);
    }

    /// <summary>Writes zeros into a file until the file system is full.</summary>
    public void FillUp()
    {
        var chunk = new byte[64 * 1024];
        using var filler = new FileStream(System.IO.Path.Join(Path, "filler"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
        try
        {
            while (true)
            {
                filler.Write(chunk);
            }
        }
        catch (IOException)
        {
            // ENOSPC: full.
        }
    }

    public void Dispose()
    {
        Run("umount", "-l", Path);
        _directory.Dispose();
    }

    private static (int Code, string Error) Run(string tool, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(tool, args) { RedirectStandardError = true, UseShellExecute = false })!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, error);
    }
}
