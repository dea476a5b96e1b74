using System.Runtime.InteropServices;

namespace FileProxy.Protocol.Native;

public static partial class Posix
{
    private const int RlimitNofile = 7;
    private const ulong RlimInfinity = ulong.MaxValue;

    /// <summary>The soft and hard limit on open file descriptors (RLIMIT_NOFILE).</summary>
    public readonly record struct FileLimit(ulong Soft, ulong Hard);

    /// <summary>Reads RLIMIT_NOFILE; null when the call fails.</summary>
    public static FileLimit? GetFileLimit()
    {
        if (getrlimit(RlimitNofile, out var limit) != 0)
        {
            return null;
        }
        return new FileLimit(limit.Current, limit.Maximum);
    }

    /// <summary>
    /// Raises the soft limit on open file descriptors to the hard limit (an unlimited hard limit stands for the
    /// kernel's fs.nr_open). Every connection costs a descriptor, and the usual soft limit of 1024 is below the
    /// default of 4096 connections. Returns the limit before and after; after equals before when nothing changed
    /// or the raise was refused.
    /// </summary>
    public static (FileLimit Before, FileLimit After)? RaiseFileLimit()
    {
        if (GetFileLimit() is not { } before)
        {
            return null;
        }
        var target = before.Hard == RlimInfinity ? KernelMaxOpen() : before.Hard;
        if (target <= before.Soft)
        {
            return (before, before);
        }
        var raised = new RLimit { Current = target, Maximum = before.Hard };
        return setrlimit(RlimitNofile, in raised) == 0 ? (before, before with { Soft = target }) : (before, before);
    }

    /// <summary>Descriptors this process has open now (the runtime holds one or two per loaded assembly, about 60
    /// for a server at start); null when /proc cannot say.</summary>
    public static int? OpenDescriptorCount()
    {
        try
        {
            return System.IO.Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static ulong KernelMaxOpen()
    {
        try
        {
            return ulong.TryParse(File.ReadAllText("/proc/sys/fs/nr_open").Trim(), out var value) ? value : 1 << 20;
        }
        catch (IOException)
        {
            return 1 << 20;
        }
        catch (UnauthorizedAccessException)
        {
            return 1 << 20;
        }
    }

    /// <summary>struct rlimit on 64-bit Linux.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, in RLimit limit);
}
