namespace FileProxy.Protocol.Native;

/// <summary>The Linux (x86-64 and arm64) errno values that <see cref="Posix"/>'s callers tell apart, by their C names,
/// so that no caller compares against a bare number.</summary>
public static class Errno
{
    public const int EPERM = 1;
    public const int ENXIO = 6;
    public const int EAGAIN = 11; // also EWOULDBLOCK
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int ENOTDIR = 20;
    public const int EINVAL = 22;
    public const int ENFILE = 23;
    public const int EMFILE = 24;
    public const int ENOSPC = 28;
    public const int EROFS = 30;
    public const int EPIPE = 32;
    public const int ENOSYS = 38;
    public const int EOPNOTSUPP = 95;
    public const int ENOBUFS = 105;
}
