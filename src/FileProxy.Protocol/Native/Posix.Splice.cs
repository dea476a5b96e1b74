using System.Runtime.InteropServices;

namespace FileProxy.Protocol.Native;

/// <summary>pipe2(2), splice(2) and mmap(2), for moving a socket's bytes into a file without copying them through
/// the process (<see cref="Client.BodyCopier"/>).</summary>
public static partial class Posix
{
    /// <summary>SPLICE_F_MOVE | SPLICE_F_NONBLOCK: never wait inside the call (a socket with nothing to read and a
    /// full or empty pipe answer EAGAIN; the caller waits on the socket engine instead).</summary>
    public const uint SpliceNonBlocking = 0x1 | 0x2;

    private const int PipeFlags = 0x800 | 0x80000; // O_NONBLOCK | O_CLOEXEC
    private const int SetPipeSize = 1031; // F_SETPIPE_SZ
    private const int GetStatusFlags = 3; // F_GETFL
    private const int AccessModeMask = 3; // O_ACCMODE
    private const int ProtRead = 1;
    private const int MapShared = 1;
    private const int MapPopulate = 0x8000;

    /// <summary>A non-blocking pipe of (at least) <paramref name="capacity"/> bytes where the system allows that
    /// much, else of its default size. Returns the errno on failure.</summary>
    public static unsafe int TryOpenPipe(int capacity, out int readFd, out int writeFd)
    {
        var fds = stackalloc int[2];
        if (pipe2(fds, PipeFlags) != 0)
        {
            (readFd, writeFd) = (-1, -1);
            return Marshal.GetLastPInvokeError();
        }
        (readFd, writeFd) = (fds[0], fds[1]);
        _ = fcntl(writeFd, SetPipeSize, capacity); // above /proc/sys/fs/pipe-max-size it fails: the default stays
        return 0;
    }

    /// <summary>Whether the descriptor is in non-blocking mode (a splice from a blocking socket would wait in the
    /// kernel for its bytes).</summary>
    public static bool IsNonBlocking(int fd) => fcntl(fd, GetStatusFlags, 0) is var flags && flags >= 0 && (flags & ONonBlock) != 0;

    /// <summary>Whether the descriptor was opened for reading and writing (O_RDWR): a write-only one cannot be mapped
    /// to read back what was spliced into it.</summary>
    public static bool IsReadWrite(int fd) => fcntl(fd, GetStatusFlags, 0) is var flags && flags >= 0 && (flags & AccessModeMask) == ORdWr;

    /// <summary>splice(2) from <paramref name="fromFd"/> at its own position to <paramref name="toFd"/> at
    /// <paramref name="toOffset"/> (advanced by what moved), or at its own position when that is null. Returns the
    /// bytes moved, or the negated errno.</summary>
    public static unsafe long Splice(int fromFd, int toFd, long* toOffset, long length, uint flags)
    {
        var moved = splice(fromFd, null, toFd, toOffset, (nuint)length, flags);
        return moved >= 0 ? moved : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Maps <paramref name="length"/> bytes of a file from <paramref name="offset"/> (a multiple of the page
    /// size) read-only, its pages already in place (MAP_POPULATE). Null on failure, with the errno.</summary>
    public static unsafe byte* MapForReading(int fd, long offset, long length, out int error)
    {
        var address = mmap(null, (nuint)length, ProtRead, MapShared | MapPopulate, fd, offset);
        error = address == (void*)-1 ? Marshal.GetLastPInvokeError() : 0;
        return error == 0 ? (byte*)address : null;
    }

    public static unsafe void Unmap(byte* address, long length) => _ = munmap(address, (nuint)length);

    public static int Close(int fd) => close(fd);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint splice(int fromFd, long* fromOffset, int toFd, long* toOffset, nuint length, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial void* mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int munmap(void* address, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
