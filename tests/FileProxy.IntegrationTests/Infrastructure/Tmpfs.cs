using System.Diagnostics;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>A small tmpfs mounted on a fresh directory, for a disk that really fills up. Needs root (CI runs as root);
/// <see cref="TryMount"/> says why not where it cannot.</summary>
public sealed class Tmpfs : IDisposable
{
    private readonly TempDirectory _directory;

    private Tmpfs(TempDirectory directory) => _directory = directory;

    public string Path => _directory.Path;

    /// <summary>Mounts a tmpfs of <paramref name="size"/> bytes; <paramref name="inodes"/> bounds its files too.</summary>
    public static Tmpfs? TryMount(string size, out string whyNot, int? inodes = null)
    {
        var directory = new TempDirectory("fileproxy-tmpfs");
        var options = inodes is { } count ? $"size={size},nr_inodes={count}" : $"size={size}";
        var (code, error) = Run("mount", "-t", "tmpfs", "-o", options, "tmpfs", directory.Path);
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

    /// <summary>Creates empty files until the file system has no inode left (ENOSPC on create, bytes still free).</summary>
    public void ExhaustInodes()
    {
        for (var i = 0; ; i++)
        {
            try
            {
                File.Create(System.IO.Path.Join(Path, $"inode{i}")).Dispose();
            }
            catch (IOException)
            {
                return;
            }
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
