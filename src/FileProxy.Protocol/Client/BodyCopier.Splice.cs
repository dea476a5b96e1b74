using System.Buffers;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using FileProxy.Protocol.Native;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Protocol.Client;

public static partial class BodyCopier
{
    /// <summary>The splice's pipe: what one round moves from the socket before it goes on to the file.</summary>
    private const int PipeBytes = 1024 * 1024;

    /// <summary>Bytes gathered in the pipe before they go on to the file and the hash, unless the socket has no
    /// more for now (then what is there goes at once: a fill's readers see bytes as they arrive).</summary>
    private const int SpliceFlushBytes = 512 * 1024;

    /// <summary>Bytes this process has spliced from a socket into a file (the copies it did not make).</summary>
    internal static long SplicedBytes => Interlocked.Read(ref _splicedBytes);

    private static long _splicedBytes;

    /// <summary>
    /// Like <see cref="TryCopyToFileAsync(GetResponse, SafeFileHandle, long, ContentHasher?, Action{long}?, CancellationToken)"/>,
    /// but the bytes go from the socket into the file inside the kernel: splice(2) moves them from the socket into a
    /// pipe (page references, no copy) and from the pipe into the file (the one copy, into the page cache), and the
    /// hash then reads them where they landed, through a read-only mapping of the file, while they are still in
    /// the processor's cache. A receive into the process and a write out of it cost one copy each: a cold 1 GiB
    /// cache fill spent 23 % of the proxy's CPU in the receive's copy and 11 % in the write's (perf,
    /// docs/BENCHMARKS.md). Linux and plain connections only; anything else, or a socket or file that refuses
    /// splice, copies through the process as before.
    /// </summary>
    public static async Task<(long Bytes, CopyOutcome Outcome)> TrySpliceToFileAsync(GetResponse response, SafeFileHandle file,
        long fileOffset, ContentHasher hash, Action<long>? written, CancellationToken cancellationToken)
    {
        var client = response.Client;
        long received = 0;
        var reading = false;
        try
        {
            // Body bytes that came in with the response head sit in the frame reader's buffer (up to 128 KiB): read
            // as before, a first slice at a time, so the first of them reach the file and the readers at once.
            if (client.BufferedBodyBytes > 0 && response.Remaining > 0)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(FirstSliceBytes);
                try
                {
                    while (client.BufferedBodyBytes > 0 && response.Remaining > 0)
                    {
                        reading = true;
                        var read = await response.ReadAsync(buffer.AsMemory(0, Math.Min(FirstSliceBytes, client.BufferedBodyBytes)), cancellationToken);
                        reading = false;
                        Land(buffer.AsSpan(0, read), file, fileOffset + received, hash, written);
                        received += read;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
            if (response.Remaining == 0)
            {
                return (received, CopyOutcome.Success);
            }
            if (client.SpliceSource is not { } socket || Splicer.TryOpen(socket, file) is not { } splicer)
            {
                return await CopyRestAsync();
            }
            using (splicer)
            {
                if (await splicer.CopyAsync(response, fileOffset + received, hash, written, cancellationToken) is { } spliced)
                {
                    return (received + spliced.Bytes, spliced.Outcome);
                }
                // The socket refused splice before any byte moved (a kind of socket without it): copy instead.
                return await CopyRestAsync();
            }
        }
        catch (Exception e) when (e is UpstreamException or IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            return (received, reading && e is not UnauthorizedAccessException ? CopyOutcome.UpstreamFailed(e) : CopyOutcome.DownstreamFailed(e));
        }

        // The rest of the body through the process, after what was already landed.
        async Task<(long Bytes, CopyOutcome Outcome)> CopyRestAsync()
        {
            var (copied, outcome) = await TryCopyToFileAsync(response, file, fileOffset + received, hash, written, cancellationToken);
            return (received + copied, outcome);
        }
    }

    /// <summary>One body's splice: the pipe, and references on the socket's and the file's descriptors for as long
    /// as it runs.</summary>
    private sealed class Splicer : IDisposable
    {
        private readonly SafeHandle _socket;
        private readonly SafeFileHandle _file;
        private readonly int _socketFd;
        private readonly int _fileFd;
        private readonly int _pipeRead;
        private readonly int _pipeWrite;
        private long _inPipe;

        private Splicer(SafeHandle socket, SafeFileHandle file, int pipeRead, int pipeWrite)
        {
            (_socket, _file, _pipeRead, _pipeWrite) = (socket, file, pipeRead, pipeWrite);
            var added = false;
            _socket.DangerousAddRef(ref added);
            _socketFd = (int)_socket.DangerousGetHandle();
            added = false;
            try
            {
                _file.DangerousAddRef(ref added);
            }
            catch
            {
                _socket.DangerousRelease();
                throw;
            }
            _fileFd = (int)_file.DangerousGetHandle();
        }

        /// <summary>A splicer from <paramref name="socket"/> into <paramref name="file"/>, or null when the file
        /// cannot take spliced bytes (its file system has no splice write, or it is not open for reading and
        /// writing) or no pipe can be had.</summary>
        public static unsafe Splicer? TryOpen(Socket socket, SafeFileHandle file)
        {
            if (Posix.TryOpenPipe(PipeBytes, out var pipeRead, out var pipeWrite) != 0)
            {
                return null;
            }
            Splicer splicer;
            try
            {
                splicer = new Splicer(socket.SafeHandle, file, pipeRead, pipeWrite);
            }
            catch (ObjectDisposedException)
            {
                Posix.Close(pipeRead);
                Posix.Close(pipeWrite);
                return null;
            }
            // From the empty pipe into the file: EAGAIN where the file system can take spliced bytes, EINVAL where not
            // (EBADF for a descriptor not open for writing). The hash maps the file to read it back: read-write only.
            var offset = 0L;
            if (!Posix.IsReadWrite(splicer._fileFd)
                || Posix.Splice(pipeRead, splicer._fileFd, &offset, 1, Posix.SpliceNonBlocking) != -Errno.EAGAIN)
            {
                splicer.Dispose();
                return null;
            }
            return splicer;
        }

        /// <summary>Splices the rest of the body into the file from <paramref name="position"/>. Null when the
        /// socket refused the first splice (EINVAL): nothing was taken from it, and the connection is as it was.</summary>
        public async Task<(long Bytes, CopyOutcome Outcome)?> CopyAsync(GetResponse response, long position, ContentHasher hash,
            Action<long>? written, CancellationToken cancellationToken)
        {
            var client = response.Client;
            var start = position;
            var reading = false;
            var hashing = new Hashing(this, hash, position);
            try
            {
                while (response.Remaining > 0)
                {
                    reading = true;
                    cancellationToken.ThrowIfCancellationRequested();
                    // The first splice takes no more than a first slice: its bytes go on to the file and the
                    // readers at once, and copying a whole pipe's worth first put 0.2 ms on a cold miss's first byte.
                    var moved = FromSocket(Math.Min(response.Remaining, position == start ? FirstSliceBytes : PipeBytes - _inPipe));
                    if (moved == -Errno.EAGAIN)
                    {
                        if (_inPipe == 0)
                        {
                            await client.WaitForBodyBytesAsync(response, cancellationToken);
                            continue;
                        }
                    }
                    else if (moved == -Errno.EINVAL && position == start && _inPipe == 0)
                    {
                        return null;
                    }
                    else if (moved < 0)
                    {
                        throw client.BodySpliceFailed(response, (int)-moved);
                    }
                    else
                    {
                        client.BodyRead(response, moved); // 0: the peer closed early, which throws
                        _inPipe += moved;
                        if (_inPipe < SpliceFlushBytes && response.Remaining > 0 && position > start)
                        {
                            continue; // the first bytes go on at once; later ones gather up to a flush's worth
                        }
                    }
                    reading = false;
                    position = Flush(position, hashing, written);
                }
                await hashing.DoneAsync();
                return (position - start, CopyOutcome.Success);
            }
            catch (Exception e) when (e is UpstreamException or IOException or OperationCanceledException)
            {
                if (reading && _inPipe > 0)
                {
                    // What did arrive still goes into the file, as with a copy: a retry or a resume goes on from the
                    // last byte received.
                    try
                    {
                        position = Flush(position, hashing, written);
                    }
                    catch (IOException)
                    {
                        // The upstream's failure is the one to report.
                    }
                }
                // The upstream's failure leaves the file and the hash agreeing on what arrived; the file's stops both.
                await (reading ? hashing.IdleAsync() : hashing.StopAsync());
                return (position - start, reading ? CopyOutcome.UpstreamFailed(e) : CopyOutcome.DownstreamFailed(e));
            }
        }

        private unsafe long FromSocket(long length) => Posix.Splice(_socketFd, _pipeWrite, null, length, Posix.SpliceNonBlocking);

        /// <summary>Moves what the pipe holds into the file at <paramref name="position"/>, reports the file's new
        /// length, and hands the new bytes to the hash. Returns the new position.</summary>
        private unsafe long Flush(long position, Hashing hashing, Action<long>? written)
        {
            var offset = position;
            while (_inPipe > 0)
            {
                var moved = Posix.Splice(_pipeRead, _fileFd, &offset, _inPipe, Posix.SpliceNonBlocking);
                if (moved <= 0)
                {
                    throw new IOException($"writing to the file failed: {Marshal.GetPInvokeErrorMessage((int)-moved)}");
                }
                _inPipe -= moved;
            }
            Interlocked.Add(ref _splicedBytes, offset - position);
            written?.Invoke(offset);
            hashing.Add(offset);
            return offset;
        }

        /// <summary>Feeds the file's bytes [<paramref name="from"/>, <paramref name="to"/>) to the hash through a
        /// mapping of just those pages, unmapped again at once (so they never count towards the process's RSS for
        /// long).</summary>
        private unsafe void HashFromFile(long from, long to, ContentHasher hash)
        {
            var mapped = from & ~(long)(Environment.SystemPageSize - 1);
            var length = to - mapped;
            var address = Posix.MapForReading(_fileFd, mapped, length, out var error);
            if (address is null)
            {
                throw new IOException($"mapping the file to hash it failed: {Marshal.GetPInvokeErrorMessage(error)}");
            }
            try
            {
                hash.Append(new ReadOnlySpan<byte>(address + (from - mapped), (int)(to - from)));
            }
            finally
            {
                Posix.Unmap(address, length);
            }
        }

        /// <summary>
        /// Hashes the file's bytes in order as they land, on a thread-pool work item of its own that runs while there
        /// is something to hash: the splicing flow goes back to the socket at once. With the hash on the splicing
        /// flow (socket, file and hash in turn) a cold 1 GiB miss took 1047 ms against 925 for the copy through the
        /// process (medians of 9, scripts/measure-cold-miss.sh): the socket waited while the flow hashed.
        /// </summary>
        private sealed class Hashing(Splicer splicer, ContentHasher hash, long from)
        {
            /// <summary>At most this much is mapped and hashed at once, so the bytes are hashed while in the cache.</summary>
            private const long MaxRunBytes = 1024 * 1024;

            private readonly Lock _gate = new();
            private long _hashed = from;
            private long _landed = from;
            private bool _running;
            private bool _stopping;
            private Exception? _failure;
            private TaskCompletionSource? _idle;

            /// <summary>The file now holds the body's bytes up to <paramref name="landed"/>.</summary>
            public void Add(long landed)
            {
                lock (_gate)
                {
                    if (_failure is not null)
                    {
                        throw new IOException(_failure.Message, _failure);
                    }
                    _landed = landed;
                    if (_running)
                    {
                        return;
                    }
                    _running = true;
                }
                ThreadPool.UnsafeQueueUserWorkItem(static self => self.Run(), this, preferLocal: false);
            }

            /// <summary>Waits until every landed byte is hashed; throws what hashing met.</summary>
            public async Task DoneAsync()
            {
                await IdleAsync();
                if (_failure is { } failure)
                {
                    throw new IOException(failure.Message, failure);
                }
            }

            /// <summary>Stops after the run under way (the file is not touched after this returns).</summary>
            public Task StopAsync()
            {
                lock (_gate)
                {
                    _stopping = true;
                }
                return IdleAsync();
            }

            /// <summary>Completes once every landed byte is hashed, or hashing failed or was stopped.</summary>
            public Task IdleAsync()
            {
                lock (_gate)
                {
                    if (!_running)
                    {
                        return Task.CompletedTask;
                    }
                    _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    return _idle.Task;
                }
            }

            private void Run()
            {
                while (true)
                {
                    long to;
                    lock (_gate)
                    {
                        if (_stopping || _failure is not null || _hashed == _landed)
                        {
                            _running = false;
                            _idle?.TrySetResult();
                            _idle = null;
                            return;
                        }
                        to = Math.Min(_landed, _hashed + MaxRunBytes);
                    }
                    try
                    {
                        splicer.HashFromFile(_hashed, to, hash);
                        _hashed = to;
                    }
                    catch (Exception e)
                    {
                        lock (_gate)
                        {
                            _failure = e;
                        }
                    }
                }
            }
        }

        public void Dispose()
        {
            Posix.Close(_pipeRead);
            Posix.Close(_pipeWrite);
            _socket.DangerousRelease();
            _file.DangerousRelease();
        }
    }
}
