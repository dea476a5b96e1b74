using System.Diagnostics;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Client;

/// <summary>The outcome of one download.</summary>
internal sealed record DownloadResult(int ExitCode, string Message)
{
    public ResponseHead? Head { get; init; }
    public long Bytes { get; init; }
    public TimeSpan Elapsed { get; init; }
    public bool DigestChecked { get; init; }

    /// <summary>The bytes went straight into a device, FIFO or open descriptor rather than a file renamed into place.</summary>
    public bool WroteStraight { get; init; }
}

/// <summary>
/// Fetches one file. Onto a regular file (or a new name) the bytes go to a temporary file beside the output, whose
/// length and BLAKE3 digest are checked before it is renamed to the output path: a failed download leaves the output
/// as it was and no temporary file. Onto anything else (a device, a FIFO, standard output) the bytes are written
/// straight through, the digest is checked all the same, and the exit code says whether they were right.
/// </summary>
internal static class Download
{
    public static async Task<DownloadResult> ToPathAsync(FileClient client, SafeName name, string outputPath,
        ulong offset, ulong length, IDownloadProgress? progress, CancellationToken cancellationToken)
    {
        OutputTarget target;
        try
        {
            target = OutputTarget.Resolve(outputPath);
        }
        catch (IOException e)
        {
            return new DownloadResult(ExitCodes.LocalIoError, $"cannot write {outputPath}: {e.Message}");
        }
        if (!target.Direct)
        {
            return await ToFileAsync(client, name, outputPath, target.Path, offset, length, progress, cancellationToken);
        }
        return await ToStreamAsync(client, name, outputPath, () => new FileStream(
            File.OpenHandle(target.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite), FileAccess.Write, 0),
            offset, length, progress, cancellationToken);
    }

    /// <summary>Streams a file to standard output, through its descriptor (the console stream would hide a closed
    /// pipe).</summary>
    public static Task<DownloadResult> ToStandardOutputAsync(FileClient client, SafeName name, ulong offset, ulong length,
        IDownloadProgress? progress, CancellationToken cancellationToken) =>
        ToStreamAsync(client, name, "standard output",
            () => new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, 0),
            offset, length, progress, cancellationToken);

    private static async Task<DownloadResult> ToFileAsync(FileClient client, SafeName name, string outputPath, string finalPath,
        ulong offset, ulong length, IDownloadProgress? progress, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        await using var response = await client.GetAsync(new GetRequest(name.Value, offset, length), cancellationToken);
        var head = response.Head;
        if (!head.IsOk)
        {
            return new DownloadResult(ExitCodes.For(head.Status), $"{head.Status}: {head.Message}") { Head = head };
        }
        progress?.Started(head);

        var directory = Path.GetDirectoryName(finalPath)!;
        var temporary = Path.Join(directory, $".{Path.GetFileName(finalPath)}.{Guid.NewGuid():N}.part");
        var whole = IsWholeFile(head);
        try
        {
            using var hash = whole ? new ContentHasher() : null;
            long copied;
            using (var file = File.OpenHandle(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None,
                       FileOptions.None))
            {
                var free = new DriveInfo(directory).AvailableFreeSpace;
                if (free < head.Length)
                {
                    return Fail(ExitCodes.LocalIoError,
                        $"not enough disk space for {outputPath}: {head.Length} bytes needed, {free} free");
                }
                copied = await BodyCopier.CopyToFileAsync(response, file, 0, hash, progress is null ? null : progress.Advanced, cancellationToken);
            }
            if (copied != head.Length)
            {
                return Fail(ExitCodes.NetworkError, $"received {copied} of {head.Length} bytes");
            }
            if (hash is not null)
            {
                var digest = hash.Finish();
                if (digest != head.File!.Digest)
                {
                    return Fail(ExitCodes.IntegrityError,
                        $"integrity check failed: received bytes hash to {digest}, the server announced {head.File.Digest}");
                }
            }
            // Only ever over a regular file or a new name (OutputTarget): a device or FIFO is never replaced.
            File.Move(temporary, finalPath, overwrite: true);
            return new DownloadResult(ExitCodes.Success, "ok")
            {
                Head = head,
                Bytes = copied,
                Elapsed = stopwatch.Elapsed,
                DigestChecked = whole,
            };
        }
        catch (UpstreamException e)
        {
            return Fail(ExitCodes.NetworkError, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(ExitCodes.LocalIoError, $"cannot write {outputPath}: {Describe(e)}");
        }
        finally
        {
            try
            {
                File.Delete(temporary);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // It was never created (no such directory, not writable): nothing to clean up.
            }
        }

        DownloadResult Fail(int exitCode, string message) => new(exitCode, message) { Head = head };
    }

    /// <summary>Writes the body straight into a stream opened only once the answer is Ok (opening a FIFO waits for
    /// its reader); the digest is checked at the end and the exit code says if it failed.</summary>
    private static async Task<DownloadResult> ToStreamAsync(FileClient client, SafeName name, string outputName,
        Func<Stream> open, ulong offset, ulong length, IDownloadProgress? progress, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        await using var response = await client.GetAsync(new GetRequest(name.Value, offset, length), cancellationToken);
        var head = response.Head;
        if (!head.IsOk)
        {
            return new DownloadResult(ExitCodes.For(head.Status), $"{head.Status}: {head.Message}") { Head = head };
        }
        progress?.Started(head);
        var whole = IsWholeFile(head);
        using var hash = whole ? new ContentHasher() : null;
        var buffer = new byte[BodyCopier.BlockBytes];
        long copied = 0;
        try
        {
            await using var output = open();
            int read;
            while ((read = await response.ReadAsync(buffer, cancellationToken)) > 0)
            {
                hash?.Append(buffer.AsSpan(0, read));
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                copied += read;
                progress?.Advanced(copied);
            }
            await output.FlushAsync(cancellationToken);
        }
        catch (UpstreamException e)
        {
            return new DownloadResult(ExitCodes.NetworkError, e.Message) { Head = head, Bytes = copied };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new DownloadResult(ExitCodes.LocalIoError,
                $"cannot write {outputName} after {copied} of {head.Length} bytes: {Describe(e)}") { Head = head, Bytes = copied };
        }
        if (hash is not null && hash.Finish() != head.File!.Digest)
        {
            return new DownloadResult(ExitCodes.IntegrityError, "integrity check failed: digest mismatch") { Head = head, Bytes = copied };
        }
        return new DownloadResult(ExitCodes.Success, "ok")
        {
            Head = head,
            Bytes = copied,
            Elapsed = stopwatch.Elapsed,
            DigestChecked = whole,
            WroteStraight = true,
        };
    }

    /// <summary>Only a whole file can be checked against the announced digest, which covers the whole file.</summary>
    private static bool IsWholeFile(ResponseHead head) => head.Offset == 0 && head.Length == head.File!.Size;

    /// <summary>The reason of a local I/O failure in a user's words, without our temporary file's name.</summary>
    private static string Describe(Exception e) => e switch
    {
        DirectoryNotFoundException => "no such directory",
        FileNotFoundException => "files cannot be created in that directory",
        UnauthorizedAccessException => "permission denied",
        IOException { HResult: 28 } => "no space left on device",
        IOException { HResult: 30 } => "read-only file system",
        IOException { HResult: 32 } => "broken pipe (the reader went away)",
        _ => e.Message,
    };
}
