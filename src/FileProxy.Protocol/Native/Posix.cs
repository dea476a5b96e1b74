using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Protocol.Native;

/// <summary>The few Linux calls the BCL does not expose: statx (inode, file type and nanosecond times), and
/// socket(2) for protocols .NET refuses to create (MPTCP).</summary>
public static partial class Posix
{
    private const int AtFdCwd = -100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;
    private const ushort FileTypeMask = 0xF000;
    private const ushort RegularFile = 0x8000;
    private const ushort Directory = 0x4000;

    /// <summary>What statx says of one file.</summary>
    public readonly record struct FileStatus(ushort Mode, ulong Inode, long Size, long ModifiedNanoseconds, long ChangedNanoseconds)
    {
        public bool IsRegularFile => (Mode & FileTypeMask) == RegularFile;

        public bool IsDirectory => (Mode & FileTypeMask) == Directory;

        /// <summary>A tag that changes whenever the file is replaced (inode) or written (size, mtime, ctime).</summary>
        public string VersionTag => $"{Inode:x}-{Size:x}-{ModifiedNanoseconds:x}-{ChangedNanoseconds:x}";
    }

    /// <summary>Status of the file at <paramref name="path"/>, following symlinks. Returns the errno on failure.</summary>
    public static int TryStat(string path, out FileStatus status) => Statx(AtFdCwd, path, 0, out status);

    /// <summary>Status of an open file.</summary>
    public static int TryStat(SafeFileHandle handle, out FileStatus status)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            return Statx((int)handle.DangerousGetHandle(), "", AtEmptyPath, out status);
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>The absolute path an open file descriptor refers to, read from /proc (race-free, unlike
    /// resolving the name again).</summary>
    public static string? OpenedPath(SafeFileHandle handle) =>
        new FileInfo($"/proc/self/fd/{handle.DangerousGetHandle()}").LinkTarget;

    /// <summary>The canonical absolute path (every symlink resolved), or null when it does not exist.</summary>
    public static unsafe string? RealPath(string path)
    {
        var resolved = realpath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            return null;
        }
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            NativeMemory.Free((void*)resolved); // realpath allocated it with malloc
        }
    }

    /// <summary>socket(2) with close-on-exec: the new descriptor, or the negated errno.</summary>
    public static int OpenSocket(int domain, int type, int protocol)
    {
        const int closeOnExec = 0x80000; // SOCK_CLOEXEC, as .NET opens its own sockets
        var fd = socket(domain, type | closeOnExec, protocol);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    private static unsafe int Statx(int dirFd, string path, int flags, out FileStatus status)
    {
        var buffer = stackalloc byte[256];
        if (statx(dirFd, path, flags, StatxBasicStats, buffer) != 0)
        {
            status = default;
            return Marshal.GetLastPInvokeError();
        }
        status = new FileStatus(
            Mode: *(ushort*)(buffer + 28),
            Inode: *(ulong*)(buffer + 32),
            Size: *(long*)(buffer + 40),
            ModifiedNanoseconds: Nanoseconds(buffer + 112),
            ChangedNanoseconds: Nanoseconds(buffer + 96));
        return 0;
    }

    private static unsafe long Nanoseconds(byte* timestamp) => (*(long*)timestamp * 1_000_000_000L) + *(uint*)(timestamp + 8);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr realpath(string path, IntPtr resolved);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string pathname, int flags, uint mask, byte* statxbuf);
}
