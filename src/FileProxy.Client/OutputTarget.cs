using FileProxy.Protocol.Native;

namespace FileProxy.Client;

/// <summary>
/// Where a download's bytes go, decided the way curl users expect. A regular file (or a name that does not exist
/// yet) is replaced atomically: the bytes go to a temporary file beside it, which takes the name only once complete
/// and verified. Anything else that exists (a character or block device such as <c>/dev/null</c>, a FIFO, an open
/// descriptor named through <c>/dev/stdout</c> or <c>/proc/self/fd/N</c>) is written straight into, as curl does:
/// renaming over it would destroy it. A symlink is followed to what it points at; the link itself stays. One of this
/// process's own descriptors (<c>/dev/stdout</c>, <c>/dev/fd/N</c>, <c>/proc/self/fd/N</c>) is written through that
/// descriptor (<see cref="Descriptor"/>), as <c>-o -</c> is: the shell's offset and O_APPEND hold, where opening the
/// name again would start a new description at offset 0.
/// </summary>
internal sealed record OutputTarget(string Path, bool Direct, int? Descriptor = null)
{
    private const int MaxLinks = 40; // Linux's own limit for one path (ELOOP)

    /// <summary>Where the user's <paramref name="path"/> really leads. Throws <see cref="IOException"/> for a
    /// symlink loop.</summary>
    public static OutputTarget Resolve(string path)
    {
        var current = System.IO.Path.GetFullPath(path);
        for (var links = 0; ; links++)
        {
            if (current.StartsWith("/dev/fd/", StringComparison.Ordinal))
            {
                // /dev/fd is itself a link (to /proc/self/fd): reading /dev/fd/N's link would give N's "pipe:[123]".
                current = "/proc/self/fd/" + current["/dev/fd/".Length..];
            }
            if (OwnDescriptor(current) is { } descriptor)
            {
                return new OutputTarget(current, Direct: true, descriptor);
            }
            if (IsOpenDescriptor(current))
            {
                // Another process's /proc/PID/fd/N links to "pipe:[123]" or a socket, which are no paths: open the
                // magic link itself.
                return new OutputTarget(current, Direct: true);
            }
            var target = new FileInfo(current).LinkTarget;
            if (target is null)
            {
                break;
            }
            if (links == MaxLinks)
            {
                throw new IOException($"too many levels of symbolic links in '{path}'");
            }
            current = System.IO.Path.GetFullPath(target, System.IO.Path.GetDirectoryName(current)!);
        }
        var exists = Posix.TryStat(current, out var status) == 0;
        return new OutputTarget(current, Direct: exists && !status.IsRegularFile && !status.IsDirectory);
    }

    /// <summary>Names of already open descriptors: <c>/proc/*/fd/N</c> (where <c>/dev/stdout</c> and <c>/dev/fd/N</c>
    /// lead).</summary>
    private static bool IsOpenDescriptor(string path) =>
        path.StartsWith("/proc/", StringComparison.Ordinal) && path.Contains("/fd/", StringComparison.Ordinal);

    /// <summary>N, when <paramref name="path"/> is <c>/proc/self/fd/N</c> or <c>/proc/PID/fd/N</c> of this process.</summary>
    private static int? OwnDescriptor(string path)
    {
        foreach (var prefix in (ReadOnlySpan<string>)["/proc/self/fd/", $"/proc/{Environment.ProcessId}/fd/"])
        {
            if (path.StartsWith(prefix, StringComparison.Ordinal)
                && int.TryParse(path.AsSpan(prefix.Length), System.Globalization.NumberStyles.None, null, out var descriptor))
            {
                return descriptor;
            }
        }
        return null;
    }
}
