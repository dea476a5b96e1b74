using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Native;
using FileProxy.Hosting;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Client;

/// <summary>The outcome of one download.</summary>
internal sealed record DownloadResult(int ExitCode, string Message)
{
    public ResponseHead? Head { get; init; }

    /// <summary>Body bytes received over the network in this run (all attempts).</summary>
    public long Bytes { get; init; }

    public TimeSpan Elapsed { get; init; }
    public bool DigestChecked { get; init; }

    /// <summary>The bytes went straight into a device, FIFO or open descriptor rather than a file renamed into place.</summary>
    public bool WroteStraight { get; init; }

    /// <summary>Bytes that were already on disk (a partial file or a shorter output) and were kept (--resume).</summary>
    public long Resumed { get; init; }

    /// <summary>Tries it took (1 when the first one succeeded or failed for good).</summary>
    public int Attempts { get; init; } = 1;

    /// <summary>How the last connection travels (MPTCP or not), when that was asked about.</summary>
    public string? Transport { get; init; }
}

/// <summary>How a download deals with passing failures and with bytes already on disk.</summary>
internal sealed record DownloadOptions
{
    /// <summary>One try on the caller's connection, nothing kept on disk after a failure.</summary>
    public static DownloadOptions Once { get; } = new() { Retry = RetryPolicy.None };

    public RetryPolicy Retry { get; init; } = new();

    /// <summary>Continue from a partial file or a shorter output, and keep the partial file after a failure.</summary>
    public bool Resume { get; init; }

    /// <summary>Receives one line per retry and per start-over (the command line prints it on standard error).</summary>
    public Action<string> Notice { get; init; } = _ => { };

    public Random Random { get; init; } = Random.Shared;

    /// <summary>Told when the answer is known and as bytes are written (the progress bar), or null.</summary>
    public IDownloadProgress? Progress { get; init; }

    /// <summary>Before retry number <paramref name="retry"/> (1 for the first): says so in a notice and returns the
    /// backoff to wait. One wording for every kind of download.</summary>
    public TimeSpan AnnounceRetry(SafeName name, string reason, int retry, long kept = 0)
    {
        var delay = Retry.DelayBefore(retry, Random);
        Notice(string.Create(CultureInfo.InvariantCulture,
            $"{name}: {reason}; retry {retry} of {Retry.Retries} in {Units.FormatDuration(delay)}{(kept > 0 ? $" ({kept} bytes kept)" : "")}"));
        return delay;
    }

    /// <summary>The failure of the last of <paramref name="attempts"/> tries, as the download reports it.</summary>
    public static string GaveUp(string reason, int attempts) => attempts == 1 ? reason : $"{reason} (gave up after {attempts} attempts)";
}

/// <summary>
/// Fetches one file. Onto a regular file (or a new name) the bytes go to a temporary file beside the output, whose
/// length and BLAKE3 digest are checked before it is renamed to the output path: a failed download leaves the output
/// as it was (and, with --resume, its partial file for the next run; see <see cref="PartialFile"/>). Onto anything
/// else (a device, a FIFO, standard output) the bytes are written straight through, the digest is checked all the
/// same, and the exit code says whether they were right.
/// <para>A passing failure (no connection, a connection cut, a timeout, Busy, UpstreamUnavailable) is tried again
/// after a backoff (<see cref="RetryPolicy"/>), on a new connection, from the first byte not yet written: a ranged
/// GET that names the version tag of the first answer, so bytes of two versions are never joined. A file that
/// changed meanwhile (VersionMismatch) starts over from byte 0, once; the whole file's digest is checked at the end
/// over every byte, those kept from before included.</para>
/// </summary>
internal static class Download
{
    /// <summary>One try on an open connection, the caller's to close.</summary>
    public static Task<DownloadResult> ToPathAsync(FileClient client, SafeName name, string outputPath,
        ulong offset, ulong length, IDownloadProgress? progress, CancellationToken cancellationToken)
    {
        var once = DownloadOptions.Once with { Progress = progress };
        return ToPathAsync(new Tries(_ => Task.FromResult(client), release: null, name, once),
            name, outputPath, offset, length, once, cancellationToken);
    }

    /// <summary>Downloads over connections from <paramref name="connect"/> (a new one after each failure).</summary>
    public static Task<DownloadResult> ToPathAsync(Func<CancellationToken, Task<FileClient>> connect, SafeName name,
        string outputPath, ulong offset, ulong length, DownloadOptions options, CancellationToken cancellationToken) =>
        ToPathAsync(new Tries(connect, client => client.DisposeAsync(), name, options), name, outputPath, offset, length, options, cancellationToken);

    /// <summary>Downloads over connections rented from <paramref name="pool"/> (a new one after each failure), each
    /// given back when the download is over with it.</summary>
    public static Task<DownloadResult> ToPathAsync(FileClientPool pool, SafeName name, string outputPath, DownloadOptions options,
        CancellationToken cancellationToken) =>
        ToPathAsync(new Tries(pool.RentAsync, pool.ReturnAsync, name, options), name, outputPath, 0, ProtocolLimits.ToEnd, options,
            cancellationToken);

    /// <summary>Streams a file to standard output over connections from <paramref name="connect"/>, through its
    /// descriptor (the console stream would hide a closed pipe).</summary>
    public static Task<DownloadResult> ToStandardOutputAsync(Func<CancellationToken, Task<FileClient>> connect, SafeName name,
        ulong offset, ulong length, DownloadOptions options, CancellationToken cancellationToken) =>
        ToStandardOutputAsync(new Tries(connect, client => client.DisposeAsync(), name, options), name, offset, length, cancellationToken);

    private static Task<DownloadResult> ToStandardOutputAsync(Tries tries, SafeName name, ulong offset, ulong length,
        CancellationToken cancellationToken) =>
        RunAsync(tries, name, offset, length,
            new StreamSink("standard output", _ => ValueTask.FromResult<Stream>(Inherited(1))),
            cancellationToken);

    private static async Task<DownloadResult> ToPathAsync(Tries tries, SafeName name, string outputPath,
        ulong offset, ulong length, DownloadOptions options, CancellationToken cancellationToken)
    {
        OutputTarget target;
        try
        {
            target = OutputTarget.Resolve(outputPath);
        }
        catch (IOException e)
        {
            await tries.DisposeAsync();
            return new DownloadResult(ExitCodes.LocalIoError, $"cannot write {outputPath}: {e.Message}");
        }
        if (target.Direct)
        {
            return await RunAsync(tries, name, offset, length, new StreamSink(outputPath, token => target.Descriptor is { } descriptor
                ? ValueTask.FromResult<Stream>(Inherited(descriptor))
                : OpenExistingAsync(target.Path, token)), cancellationToken);
        }
        var whole = offset == 0 && length == ProtocolLimits.ToEnd;
        using var partial = options.Resume && whole ? PartialFile.Resumable(target.Path) : PartialFile.Temporary(target.Path);
        return await RunAsync(tries, name, offset, length, new FileSink(outputPath, partial), cancellationToken);
    }

    /// <summary>A descriptor this process was given (standard output, or /dev/fd/N), written through as it is.</summary>
    private static FileStream Inherited(int descriptor) => new(new SafeFileHandle(descriptor, ownsHandle: false), FileAccess.Write, 0);

    /// <summary>Opens a device or FIFO for writing. A FIFO with no reader yet is waited for, as open(2) would, but
    /// within the download's deadline and cancellation, which a blocked open(2) never sees.</summary>
    private static async ValueTask<Stream> OpenExistingAsync(string path, CancellationToken cancellationToken)
    {
        while (true)
        {
            var error = Posix.TryOpenForWriting(path, out var handle);
            if (error == 0)
            {
                return new FileStream(handle!, FileAccess.Write, 0);
            }
            if (error != Errno.ENXIO)
            {
                throw error == Errno.EACCES ? new UnauthorizedAccessException() : new IOException(new Win32Exception(error).Message, error);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
        }
    }

    /// <summary>The tries of one download: GET the part still missing, copy it, retry or start over when that may
    /// help, check the whole file's digest at the end.</summary>
    private static async Task<DownloadResult> RunAsync(Tries tries, SafeName name, ulong offset, ulong length, Sink sink,
        CancellationToken cancellationToken)
    {
        await using var _ = tries;
        using var __ = sink;
        var stopwatch = Stopwatch.StartNew();
        var whole = offset == 0 && length == ProtocolLimits.ToEnd;
        var state = new TransferState { Hash = whole ? new ContentHasher() : null, Progress = tries.Progress };
        try
        {
            try
            {
                if (await sink.FindPrefixAsync(name, state.Hash, tries.Notice, cancellationToken) is { } prefix)
                {
                    (state.Have, state.FromDisk, state.File) = (prefix.Length, prefix.Length, prefix.File);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return new DownloadResult(ExitCodes.LocalIoError, $"cannot resume {sink.OutputName}: {Describe(e)}");
            }
            ResponseHead? head = null;
            while (true)
            {
                string failure;
                int exitCode;
                var transient = false;
                string? changed = null;
                try
                {
                    var request = new GetRequest(name.Value, offset + (ulong)state.Have,
                        length == ProtocolLimits.ToEnd ? ProtocolLimits.ToEnd : length - (ulong)state.Have, state.File?.Version ?? "");
                    await using var response = await tries.GetAsync(request, cancellationToken);
                    head = response.Head;
                    if (!head.IsOk)
                    {
                        if (head.Status == StatusCode.VersionMismatch && state.File is not null)
                        {
                            changed = $"changed at the origin ({head.Message})";
                        }
                        else if (head.Status == StatusCode.RangeNotSatisfiable && state.FromDisk > 0 && state.Have == state.FromDisk)
                        {
                            changed = $"{sink.OutputName} is longer than the file";
                        }
                        (failure, exitCode, transient) = ($"{head.Status}: {head.Message}", ExitCodes.For(head.Status),
                            RetryPolicy.IsTransient(head.Status));
                    }
                    else if (state.File is not null && state.File != head.File)
                    {
                        (changed, failure, exitCode) = ($"changed at the origin (version {head.File!.Version}, was {state.File.Version})", "", 0);
                    }
                    else
                    {
                        if (!state.Confirmed)
                        {
                            state.File = head.File!;
                            state.Confirmed = true;
                            sink.Record(name, state.File);
                        }
                        tries.Progress?.Started(head);
                        var before = state.Have;
                        try
                        {
                            await sink.CopyAsync(response, state, cancellationToken);
                        }
                        finally
                        {
                            state.Received += state.Have - before;
                        }
                        var announced = state.File!.Digest;
                        if (state.Hash?.Finish() is { } actual && actual != announced)
                        {
                            if (state.FromDisk == 0 || state.StartedOver)
                            {
                                sink.Keep = false;
                                return Failed(ExitCodes.IntegrityError,
                                    $"integrity check failed: received bytes hash to {actual}, the server announced {announced}");
                            }
                            (changed, failure, exitCode) = ($"the {state.FromDisk} bytes that were on disk are not the start of this file", "", 0);
                        }
                        else
                        {
                            sink.Commit();
                            return new DownloadResult(ExitCodes.Success, "ok")
                            {
                                Head = head,
                                Bytes = state.Received,
                                Elapsed = stopwatch.Elapsed,
                                DigestChecked = whole,
                                WroteStraight = sink is StreamSink,
                                Resumed = state.FromDisk,
                                Attempts = tries.Attempts,
                                Transport = tries.Transport,
                            };
                        }
                    }
                }
                catch (UpstreamException e)
                {
                    (failure, exitCode, transient) = (e.Message, e.Status is { } status ? ExitCodes.For(status) : ExitCodes.NetworkError,
                        RetryPolicy.IsTransient(e));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    return Failed(ExitCodes.LocalIoError, sink.WriteFailure(e, state));
                }

                if (changed is not null)
                {
                    // Once only: a file that keeps changing (or a peer that keeps sending wrong bytes) fails clearly.
                    var why = state.StartedOver ? "and again after starting over" : sink.CannotStartOver(state);
                    if (why is not null)
                    {
                        return Failed(ExitCodes.NetworkError, $"{changed}, {why}");
                    }
                    tries.Notice($"{name}: {changed}; starting over");
                    sink.StartOver();
                    state.StartOver(whole);
                    await tries.DropIfUnusableAsync();
                    continue;
                }
                if (transient && await tries.BackOffAsync(failure, state.Have, cancellationToken))
                {
                    continue;
                }
                return Failed(exitCode, transient ? tries.GaveUp(failure) : failure);

                DownloadResult Failed(int exitCode, string message) =>
                    new(exitCode, sink.Kept(state) is { } kept ? $"{message} ({kept})" : message) { Head = head, Bytes = state.Received, Attempts = tries.Attempts };
            }
        }
        catch (OperationCanceledException) when (sink.Kept(state) is { } kept)
        {
            tries.Notice($"{name}: {kept}");
            throw;
        }
        finally
        {
            state.Hash?.Dispose();
        }
    }

    /// <summary>The reason of a local I/O failure in a user's words, without our temporary file's name.</summary>
    private static string Describe(Exception e) => e switch
    {
        DirectoryNotFoundException => "no such directory",
        FileNotFoundException => "files cannot be created in that directory",
        UnauthorizedAccessException => "permission denied",
        IOException { HResult: Errno.ENOSPC } => "no space left on device",
        IOException { HResult: Errno.EROFS } => "read-only file system",
        IOException { HResult: Errno.EPIPE } => "broken pipe (the reader went away)",
        _ => e.Message,
    };

    /// <summary>Where one download stands across its tries.</summary>
    private sealed class TransferState
    {
        private long _have;

        /// <summary>Bytes of the asked range written so far (from disk and received).</summary>
        public long Have
        {
            get => Volatile.Read(ref _have);
            set => Volatile.Write(ref _have, value);
        }

        /// <summary>Of <see cref="Have"/>, the bytes that were on disk before this run.</summary>
        public long FromDisk { get; set; }

        /// <summary>Bytes received over the network, over every try.</summary>
        public long Received { get; set; }

        /// <summary>The file the bytes belong to: from the partial file's sidecar, then from the first answer.</summary>
        public FileMetadata? File { get; set; }

        /// <summary>Whether an answer in this run confirmed <see cref="File"/>.</summary>
        public bool Confirmed { get; set; }

        public bool StartedOver { get; private set; }

        /// <summary>The whole file's digest so far, over <see cref="Have"/> bytes (whole-file downloads only).</summary>
        public ContentHasher? Hash { get; set; }

        /// <summary>Told of every advance of <see cref="Have"/> as bytes are written.</summary>
        public IDownloadProgress? Progress { get; init; }

        /// <summary>Records <paramref name="have"/> bytes written and tells the progress bar.</summary>
        public void Advance(long have)
        {
            Have = have;
            Progress?.Advanced(have);
        }

        public void StartOver(bool whole)
        {
            (Have, FromDisk, File, Confirmed, StartedOver) = (0, 0, null, false, true);
            Hash?.Dispose();
            Hash = whole ? new ContentHasher() : null;
        }
    }

    /// <summary>Connections for the tries of one download, and the backoff between them. A connection is given to
    /// <paramref name="release"/> when the download is done with it (closed, or back to its pool); with none, the
    /// connection is the caller's.</summary>
    private sealed class Tries(Func<CancellationToken, Task<FileClient>> connect, Func<FileClient, ValueTask>? release, SafeName name,
        DownloadOptions options) : IAsyncDisposable
    {
        private FileClient? _client;
        private int _retries;

        public int Attempts => _retries + 1;

        public Action<string> Notice => options.Notice;

        public IDownloadProgress? Progress => options.Progress;

        public string? Transport => _client?.Mptcp.Describe();

        public async Task<GetResponse> GetAsync(GetRequest request, CancellationToken cancellationToken)
        {
            _client ??= await connect(cancellationToken);
            return await _client.GetAsync(request, cancellationToken);
        }

        /// <summary>After a passing failure: says so, drops the connection and waits the backoff; false once every
        /// retry is used.</summary>
        public async Task<bool> BackOffAsync(string reason, long kept, CancellationToken cancellationToken)
        {
            if (_retries >= options.Retry.Retries)
            {
                return false;
            }
            _retries++;
            var delay = options.AnnounceRetry(name, reason, _retries, kept);
            await DropAsync();
            await Task.Delay(delay, cancellationToken);
            return true;
        }

        public string GaveUp(string reason) => DownloadOptions.GaveUp(reason, Attempts);

        /// <summary>Drops a connection an abandoned body made unusable, so the next try connects again.</summary>
        public ValueTask DropIfUnusableAsync() => _client is { IsReusable: false } ? DropAsync() : ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => DropAsync();

        private async ValueTask DropAsync()
        {
            if (release is not null && _client is not null)
            {
                await release(_client);
                _client = null;
            }
        }
    }

    /// <summary>Where a download's bytes go.</summary>
    private abstract class Sink(string outputName) : IDisposable
    {
        public string OutputName { get; } = outputName;

        /// <summary>Whether what was written stays after a failure (a resumable partial file).</summary>
        public abstract bool Keep { get; set; }

        public virtual Task<Prefix?> FindPrefixAsync(SafeName name, ContentHasher? hash, Action<string> notice,
            CancellationToken cancellationToken) => Task.FromResult<Prefix?>(null);

        public virtual void Record(SafeName name, FileMetadata file)
        {
        }

        /// <summary>Copies the rest of the body after <see cref="TransferState.Have"/> bytes, advancing it (and the
        /// hash) as bytes are written.</summary>
        public abstract Task CopyAsync(GetResponse response, TransferState state, CancellationToken cancellationToken);

        /// <summary>Why the download cannot start over from byte 0, or null.</summary>
        public abstract string? CannotStartOver(TransferState state);

        public abstract void StartOver();

        public abstract void Commit();

        public abstract string WriteFailure(Exception e, TransferState state);

        /// <summary>What a failure leaves for the next --resume, or null.</summary>
        public virtual string? Kept(TransferState state) => null;

        public virtual void Dispose()
        {
        }
    }

    /// <summary>A regular file (or a new name): a partial file renamed over the output once verified.</summary>
    private sealed class FileSink(string outputName, PartialFile partial) : Sink(outputName)
    {
        public override bool Keep
        {
            get => partial.Keep;
            set => partial.Keep = value;
        }

        public override async Task<Prefix?> FindPrefixAsync(SafeName name, ContentHasher? hash, Action<string> notice,
            CancellationToken cancellationToken)
        {
            var prefix = partial.FindPrefix(name, notice);
            if (prefix is not null && hash is not null)
            {
                await partial.HashAsync(prefix.Length, hash, cancellationToken);
            }
            return prefix;
        }

        public override void Record(SafeName name, FileMetadata file) => partial.Record(name, file);

        public override async Task CopyAsync(GetResponse response, TransferState state, CancellationToken cancellationToken)
        {
            if (response.Head.Length == 0 && state.Have > 0)
            {
                return; // complete already: an output that is whole is not even moved
            }
            // Opened first, so that a directory that does not exist or cannot be written is named as such.
            var file = partial.Open();
            var free = new DriveInfo(Path.GetDirectoryName(partial.DataPath)!).AvailableFreeSpace;
            if (free < response.Head.Length)
            {
                throw new NotEnoughSpaceException(
                    $"not enough disk space for {OutputName}: {response.Head.Length} bytes needed, {free} free");
            }
            // Inline, one 512 KiB slice at a time: a user runs the client once per file, as they run curl, and the
            // drainer's thread hops cost more CPU than its overlap saved (1 GiB warm hit, native: 0.78 CPU-seconds
            // against 1.30 with 4 slices of 128 KiB; peak RSS the same). The socket's buffer overlaps the wire.
            await BodyCopier.CopyToFileAsync(response, file, state.Have, state.Hash, state.Advance, slices: 1, sliceBytes: 512 * 1024, cancellationToken);
        }

        public override string? CannotStartOver(TransferState state) => null;

        public override string? Kept(TransferState state) => partial.Keep && partial.IsResumable && state.Have > 0 && File.Exists(partial.DataPath)
            ? string.Create(CultureInfo.InvariantCulture, $"{state.Have} bytes kept in {Path.GetFileName(partial.DataPath)}; run again with --resume to continue")
            : null;

        public override void StartOver() => partial.Restart();

        public override void Commit() => partial.Commit();

        public override string WriteFailure(Exception e, TransferState state) =>
            e is NotEnoughSpaceException ? e.Message : $"cannot write {OutputName}: {Describe(e)}";
    }

    /// <summary>A device, FIFO or standard output, written straight into; opened only once the answer is Ok (opening
    /// a FIFO waits for its reader). Bytes written cannot be taken back: a retry continues after them, and a file
    /// that changed can start over only if none were written.</summary>
    private sealed class StreamSink(string outputName, Func<CancellationToken, ValueTask<Stream>> open) : Sink(outputName)
    {
        private Stream? _stream;

        public override bool Keep { get; set; }

        public override async Task CopyAsync(GetResponse response, TransferState state, CancellationToken cancellationToken)
        {
            _stream ??= await open(cancellationToken);
            var buffer = new byte[BodyCopier.BlockBytes];
            int read;
            while ((read = await response.ReadAsync(buffer, cancellationToken)) > 0)
            {
                state.Hash?.Append(buffer.AsSpan(0, read));
                await _stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                state.Advance(state.Have + read);
            }
            await _stream.FlushAsync(cancellationToken);
        }

        public override string? CannotStartOver(TransferState state) =>
            state.Have == 0 ? null : $"cannot start over: {state.Have} bytes were already written to {OutputName}";

        public override void StartOver()
        {
        }

        public override void Commit()
        {
        }

        public override void Dispose()
        {
            if (_stream is FileStream { CanSeek: true } file)
            {
                // A regular file behind an inherited descriptor (`> out`): what the shell writes next goes after our
                // bytes, not over them. (With O_APPEND, where writes go to the end anyway, this changes nothing.)
                Posix.SetOffset(file.SafeFileHandle, file.Position);
            }
            _stream?.Dispose();
            base.Dispose();
        }

        public override string WriteFailure(Exception e, TransferState state) =>
            $"cannot write {OutputName} after {state.Have} of {state.File?.Size} bytes: {Describe(e)}";
    }

    private sealed class NotEnoughSpaceException(string message) : IOException(message);
}
