using System.Diagnostics;
using System.Security.Cryptography;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.Client;

/// <summary>The outcome of one download.</summary>
internal sealed record DownloadResult(int ExitCode, string Message)
{
    public ResponseHead? Head { get; init; }
    public long Bytes { get; init; }
    public TimeSpan Elapsed { get; init; }
    public bool DigestChecked { get; init; }
}

/// <summary>
/// Fetches one file into a temporary file beside the output, checks its length and BLAKE3 digest, and only then
/// renames it to the output path. A failed download leaves the output path as it was and no temporary file.
/// </summary>
internal static class Download
{
    public static async Task<DownloadResult> ToFileAsync(FileClient client, SafeName name, string outputPath,
        ulong offset, ulong length, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        await using var response = await client.GetAsync(new GetRequest(name.Value, offset, length), cancellationToken);
        var head = response.Head;
        if (!head.IsOk)
        {
            return new DownloadResult(ExitCodes.For(head.Status), $"{head.Status}: {head.Message}") { Head = head };
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(outputPath))!;
        var temporary = Path.Join(directory, $".{Path.GetFileName(outputPath)}.{Guid.NewGuid():N}.part");
        var whole = IsWholeFile(head);
        var free = new DriveInfo(directory).AvailableFreeSpace;
        if (free < head.Length)
        {
            return new DownloadResult(ExitCodes.LocalIoError,
                $"not enough disk space for {outputPath}: {head.Length} bytes needed, {free} free") { Head = head };
        }
        try
        {
            using var hash = whole ? new ContentHasher() : null;
            long copied;
            using (var file = File.OpenHandle(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None,
                       FileOptions.None))
            {
                copied = await BodyCopier.CopyToFileAsync(response, file, 0, hash, null, cancellationToken);
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
            File.Move(temporary, outputPath, overwrite: true);
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
            return Fail(ExitCodes.LocalIoError, $"cannot write {outputPath}: {e.Message}");
        }
        finally
        {
            File.Delete(temporary);
        }

        DownloadResult Fail(int exitCode, string message) => new(exitCode, message) { Head = head };
    }

    /// <summary>Streams a file to standard output; the digest is checked at the end (exit code says if it failed).</summary>
    public static async Task<DownloadResult> ToStreamAsync(FileClient client, SafeName name, Stream output,
        ulong offset, ulong length, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        await using var response = await client.GetAsync(new GetRequest(name.Value, offset, length), cancellationToken);
        var head = response.Head;
        if (!head.IsOk)
        {
            return new DownloadResult(ExitCodes.For(head.Status), $"{head.Status}: {head.Message}") { Head = head };
        }
        var whole = IsWholeFile(head);
        using var hash = whole ? new ContentHasher() : null;
        var buffer = new byte[BodyCopier.BlockBytes];
        long copied = 0;
        try
        {
            int read;
            while ((read = await response.ReadAsync(buffer, cancellationToken)) > 0)
            {
                hash?.Append(buffer.AsSpan(0, read));
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                copied += read;
            }
            await output.FlushAsync(cancellationToken);
        }
        catch (UpstreamException e)
        {
            return new DownloadResult(ExitCodes.NetworkError, e.Message) { Head = head, Bytes = copied };
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
        };
    }

    /// <summary>Only a whole file can be checked against the announced digest, which covers the whole file.</summary>
    private static bool IsWholeFile(ResponseHead head) => head.Offset == 0 && head.Length == head.File!.Size;
}
