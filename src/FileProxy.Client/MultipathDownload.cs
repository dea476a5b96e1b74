using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Protocol.Wire;
using Serilog;

namespace FileProxy.Client;

/// <summary>
/// A whole-file download over several addresses of one server (<see cref="MultipathFetcher"/>): into a temporary
/// file beside the output, checked against the announced BLAKE3, then renamed into place. When the file changes
/// during the transfer it starts over once; nothing partial is ever left under the output name.
/// </summary>
internal static class MultipathDownload
{
    /// <summary>
    /// Whether a download to <paramref name="outputPath"/> can go over several paths; when not, says why (a Warning)
    /// and the caller uses the first --proxy alone. Subflows write out of order into a temporary file that is renamed
    /// into place: a device, FIFO or descriptor (which renaming would destroy) is written straight into, in order, by
    /// the one-path download.
    /// </summary>
    public static bool CanWrite(string outputPath)
    {
        try
        {
            if (!OutputTarget.Resolve(outputPath).Direct)
            {
                return true;
            }
        }
        catch (IOException)
        {
            return false; // the one-path download reports it
        }
        Log.Warning("{Output} is not a regular file, which multipath (writing out of order) cannot fill: fetching it over the first --proxy only",
            outputPath);
        return false;
    }

    /// <summary>
    /// The download, tried again after a passing failure as a one-path download is (<paramref name="tries"/>: its
    /// retries, backoff and notices): no path could be connected, the server answered Busy or UpstreamUnavailable, or
    /// every path failed mid-transfer. Each try starts from a fresh head and writes a new temporary file.
    /// </summary>
    public static async Task<(DownloadResult Result, MultipathResult? Transfer)> ToFileAsync(IReadOnlyList<PeerAddress> peers,
        MultipathOptions options, SafeName name, string outputPath, IDownloadProgress? progress, DownloadOptions tries,
        CancellationToken cancellationToken)
    {
        for (var retry = 0; ; retry++)
        {
            var (result, transfer, transient) = await TryAsync(peers, options, name, outputPath, progress, cancellationToken);
            if (!transient || retry >= tries.Retry.Retries)
            {
                return (retry == 0 ? result : result with
                {
                    Message = transient ? DownloadOptions.GaveUp(result.Message, retry + 1) : result.Message,
                    Attempts = retry + 1,
                }, transfer);
            }
            await Task.Delay(tries.AnnounceRetry(name, result.Message, retry + 1), cancellationToken);
        }
    }

    /// <summary>One try; Transient says whether another may go differently.</summary>
    private static async Task<(DownloadResult Result, MultipathResult? Transfer, bool Transient)> TryAsync(IReadOnlyList<PeerAddress> peers,
        MultipathOptions options, SafeName name, string outputPath, IDownloadProgress? progress, CancellationToken cancellationToken)
    {
        var addresses = peers.Select(p => (p.Host, p.Port)).ToArray();
        for (var attempt = 0; ; attempt++)
        {
            MultipathFetcher connected;
            try
            {
                connected = await MultipathFetcher.ConnectAsync(addresses, options, Log.Logger, cancellationToken);
            }
            catch (UpstreamException e)
            {
                return (Failed(e), null, RetryPolicy.IsTransient(e));
            }
            await using var fetcher = connected;
            ResponseHead head;
            try
            {
                head = await fetcher.HeadAsync(name.Value, cancellationToken);
            }
            catch (MultipathException e)
            {
                return (new DownloadResult(ExitCodes.Refused, e.Message), null, false);
            }
            catch (UpstreamException e)
            {
                return (Failed(e), null, RetryPolicy.IsTransient(e));
            }
            if (!head.IsOk)
            {
                return (new DownloadResult(ExitCodes.For(head.Status), $"{head.Status}: {head.Message}") { Head = head }, null,
                    RetryPolicy.IsTransient(head.Status));
            }
            var file = head.File!;
            progress?.Started(head);
            string destination, temporary;
            try
            {
                // Where a symlink leads: the file it names is replaced, the link stays (as on one path).
                destination = OutputTarget.Resolve(outputPath).Path;
                var directory = Path.GetDirectoryName(destination)!;
                if (!Directory.Exists(directory))
                {
                    return (new DownloadResult(ExitCodes.LocalIoError, $"cannot write {outputPath}: no such directory") { Head = head }, null, false);
                }
                var free = new DriveInfo(directory).AvailableFreeSpace;
                if (free < file.Size)
                {
                    return (new DownloadResult(ExitCodes.LocalIoError,
                        $"not enough disk space for {outputPath}: {file.Size} bytes needed, {free} free") { Head = head }, null, false);
                }
                temporary = Path.Join(directory, $".{Path.GetFileName(destination)}.{Guid.NewGuid():N}.part");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return (new DownloadResult(ExitCodes.LocalIoError, $"cannot write {outputPath}: {e.Message}") { Head = head }, null, false);
            }
            try
            {
                MultipathResult transfer;
                using (var handle = File.OpenHandle(temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
                           FileOptions.None, preallocationSize: file.Size))
                {
                    RandomAccess.SetLength(handle, file.Size);
                    transfer = await fetcher.FetchAsync(name.Value, file, handle, progress is null ? null : progress.Advanced, cancellationToken);
                }
                if (transfer.Digest != file.Digest)
                {
                    return (new DownloadResult(ExitCodes.IntegrityError,
                        $"integrity check failed: received bytes hash to {transfer.Digest}, the server announced {file.Digest}") { Head = head }, transfer, false);
                }
                File.Move(temporary, destination, overwrite: true);
                return (new DownloadResult(ExitCodes.Success, "ok")
                {
                    Head = head with { Source = transfer.Source ?? head.Source },
                    Bytes = transfer.Bytes,
                    Elapsed = transfer.Elapsed,
                    DigestChecked = true,
                }, transfer, false);
            }
            catch (FileChangedException e) when (attempt == 0)
            {
                Log.Warning("{Name}: {Reason}; starting over", name, e.Message);
            }
            catch (FileChangedException e)
            {
                return (new DownloadResult(ExitCodes.NetworkError, $"{e.Message} (and it changed again after starting over)") { Head = head }, null, false);
            }
            catch (MultipathException e)
            {
                return (new DownloadResult(ExitCodes.NetworkError, e.Message) { Head = head }, null, false);
            }
            catch (UpstreamException e)
            {
                return (Failed(e) with { Head = head }, null, RetryPolicy.IsTransient(e)); // every path failed, say
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return (new DownloadResult(ExitCodes.LocalIoError, $"cannot write {outputPath}: {e.Message}") { Head = head }, null, false);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
    }

    private static DownloadResult Failed(UpstreamException e) =>
        new(e.Status is { } status ? ExitCodes.For(status) : ExitCodes.NetworkError, e.Message);
}
