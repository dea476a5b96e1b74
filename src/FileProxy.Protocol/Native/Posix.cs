using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Protocol.Native;

/// <summary>The few Linux calls the BCL does not expose: statx (inode, file type and nanosecond times), a
/// non-blocking open, and socket(2) for protocols .NET refuses to create (MPTCP).</summary>
public static partial class Posix
{
    private const int AtFdCwd = -100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;
    private const ushort FileTypeMask = 0xF000;
    private const ushort RegularFile = 0x8000;
    private const ushort Directory = 0x4000;
    private const ushort SymbolicLink = 0xA000;
    private const int AtSymlinkNoFollow = 0x100;

    /// <summary>What statx says of one file.</summary>
    public readonly record struct FileStatus(ushort Mode, ulong Inode, long Size, long ModifiedNanoseconds, long ChangedNanoseconds)
    {
        public bool IsRegularFile => (Mode & FileTypeMask) == RegularFile;

        public bool IsDirectory => (Mode & FileTypeMask) == Directory;

        public bool IsSymbolicLink => (Mode & FileTypeMask) == SymbolicLink;

        /// <summary>What changes whenever the file is replaced (inode) or written (size, mtime, ctime).</summary>
        public FileVersion Version => new(Inode, Size, ModifiedNanoseconds, ChangedNanoseconds);

        /// <summary><see cref="Version"/> as the wire's version tag.</summary>
        public string VersionTag => Version.ToString();
    }

    /// <summary>One version of one file, compared without formatting it; <see cref="ToString"/> is its tag.</summary>
    public readonly record struct FileVersion(ulong Inode, long Size, long ModifiedNanoseconds, long ChangedNanoseconds)
    {
        public override string ToString() => $"{Inode:x}-{Size:x}-{ModifiedNanoseconds:x}-{ChangedNanoseconds:x}";
    }

    /// <summary>Status of the file at <paramref name="path"/>, following symlinks. Returns the errno on failure.</summary>
    public static int TryStat(string path, out FileStatus status) => Statx(AtFdCwd, path, 0, out status);

    /// <summary>Status of the file at <paramref name="path"/> itself: a symlink is described, not followed.</summary>
    public static int TryStatLink(string path, out FileStatus status) => Statx(AtFdCwd, path, AtSymlinkNoFollow, out status);

    /// <summary>Opens a directory (never anything else: O_DIRECTORY) to read its entries. Returns the errno
    /// (<see cref="Errno.ENOTDIR"/> when it is no directory).</summary>
    public static int TryOpenDirectory(string path, out SafeFileHandle? handle)
    {
        var fd = open(path, ORdOnly | ODirectory | ONonBlock | OCloExec, 0);
        handle = fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true) : null;
        return fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

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

    /// <summary>
    /// Opens <paramref name="path"/> for reading without ever blocking on what it turns out to be (O_NONBLOCK: a FIFO
    /// swapped in after a check would otherwise wait for a writer forever), and keeps it only if the opened descriptor
    /// is a regular file. Returns the errno (0 with a null handle: it exists but is no regular file; see
    /// <paramref name="status"/>).
    /// </summary>
    public static int TryOpenRegularFile(string path, out SafeFileHandle? handle, out FileStatus status) =>
        KeepIfRegular(open(path, ORdOnly | ONonBlock | ONoCtty | OCloExec, 0), out handle, out status);

    /// <summary>
    /// <see cref="TryOpenRegularFile"/> from the kernel's caches only: openat2(2) with RESOLVE_CACHED fails with
    /// EAGAIN (<see cref="WouldWait"/>) rather than look any part of the path up on a disk, so this never waits for
    /// one. A kernel without openat2 or the flag (before Linux 5.12) answers ENOSYS or EINVAL, also
    /// <see cref="WouldWait"/>: then open the usual way, where a wait harms nobody.
    /// </summary>
    public static unsafe int TryOpenRegularFileCached(string path, out SafeFileHandle? handle, out FileStatus status)
    {
        var how = new OpenHow { Flags = (ulong)(ORdOnly | ONonBlock | ONoCtty | OCloExec), Resolve = ResolveCached };
        return KeepIfRegular((int)openat2(SysOpenat2, AtFdCwd, path, &how, (nuint)sizeof(OpenHow)), out handle, out status);
    }

    /// <summary>Whether an errno of <see cref="TryOpenRegularFileCached"/> or <see cref="IsInPageCache"/> means only
    /// "not without waiting" (EAGAIN), or "cannot tell here" (ENOSYS, EINVAL, EOPNOTSUPP).</summary>
    public static bool WouldWait(int error) => error is Errno.EAGAIN or Errno.ENOSYS or Errno.EINVAL or Errno.EOPNOTSUPP;

    /// <summary>
    /// Whether the byte at <paramref name="offset"/> of an open file is in the page cache, so that reading or sending
    /// from there starts without waiting for a disk: preadv2(2) of one byte with RWF_NOWAIT. Returns 0 when it is
    /// (or the file ends before it), else the errno (<see cref="WouldWait"/> for "not cached" and "cannot tell").
    /// </summary>
    public static unsafe int IsInPageCache(SafeFileHandle handle, long offset)
    {
        byte one;
        var vector = new IoVector { Base = &one, Length = 1 };
        return preadv2(handle, &vector, 1, offset, ReadNoWait) >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    private const long SysOpenat2 = 437; // x86-64 and arm64 alike
    private const ulong ResolveCached = 0x20;
    private const int ReadNoWait = 0x8; // RWF_NOWAIT

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVector
    {
        public byte* Base;
        public nuint Length;
    }

    /// <summary>Wraps what an open(2) returned, kept only if it is a regular file (see <see cref="TryOpenRegularFile"/>).</summary>
    private static int KeepIfRegular(int fd, out SafeFileHandle? handle, out FileStatus status)
    {
        handle = null;
        if (fd < 0)
        {
            status = default;
            return Marshal.GetLastPInvokeError();
        }
        var opened = new SafeFileHandle(fd, ownsHandle: true);
        var error = TryStat(opened, out status);
        if (error != 0 || !status.IsRegularFile)
        {
            opened.Dispose();
            return error;
        }
        handle = opened;
        return 0;
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

    private const int ORdOnly = 0;
    private const int OWrOnly = 1;
    private const int SetStatusFlags = 4; // F_SETFL
    private const int ONoCtty = 0x100;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const int ODirectory = 0x10000;
    private const int ORdWr = 2;
    private const int OCreat = 0x40;

    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;

    /// <summary>
    /// Opens (creating it if missing) a file for reading and writing with open(2) itself: .NET's own open takes a
    /// shared flock on the file, which would fail while another process holds it exclusively and so hide what that
    /// process wrote there. Returns the errno on failure.
    /// </summary>
    public static int TryOpenUnlocked(string path, out SafeFileHandle handle)
    {
        var fd = open(path, ORdWr | OCreat | OCloExec, Convert.ToInt32("644", 8));
        handle = new SafeFileHandle(fd, ownsHandle: fd >= 0);
        return fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// Opens an existing file for writing (a device, a FIFO) without waiting: a FIFO with no reader yet answers
    /// <see cref="Errno.ENXIO"/> at once, where open(2) would wait for one past any deadline. Once open, the descriptor
    /// blocks again. Returns the errno on failure.
    /// </summary>
    public static int TryOpenForWriting(string path, out SafeFileHandle? handle)
    {
        var fd = open(path, OWrOnly | ONonBlock | ONoCtty | OCloExec, 0);
        if (fd < 0)
        {
            handle = null;
            return Marshal.GetLastPInvokeError();
        }
        var flags = fcntl(fd, GetStatusFlags, 0);
        if (flags < 0 || fcntl(fd, SetStatusFlags, flags & ~ONonBlock) < 0)
        {
            var error = Marshal.GetLastPInvokeError();
            new SafeFileHandle(fd, ownsHandle: true).Dispose();
            handle = null;
            return error;
        }
        handle = new SafeFileHandle(fd, ownsHandle: true);
        return 0;
    }

    /// <summary>Moves an open file description's offset (lseek(2), SEEK_SET): .NET's FileStream writes at offsets of
    /// its own (pwrite) and leaves the description's where it found it.</summary>
    public static void SetOffset(SafeFileHandle handle, long offset) => _ = lseek(handle, offset, 0);

    /// <summary>Takes an exclusive flock(2) on an open file without waiting: 0, or the errno (EWOULDBLOCK when another
    /// open file description holds it). Closing the handle, or the process ending, releases it.</summary>
    public static int TryLockExclusive(SafeFileHandle handle) =>
        flock(handle, LockExclusive | LockNonBlocking) == 0 ? 0 : Marshal.GetLastPInvokeError();

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string pathname, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(SafeFileHandle fd, int operation); // the marshaller holds the handle open for the call

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial long openat2(long number, int dirfd, string pathname, OpenHow* how, nuint size);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint preadv2(SafeFileHandle fd, IoVector* vectors, int count, long offset, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr realpath(string path, IntPtr resolved);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string pathname, int flags, uint mask, byte* statxbuf);
}
