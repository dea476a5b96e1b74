using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace FileProxy.Protocol.Transport;

/// <summary>
/// Sends buffers and file regions on one socket. File regions go through <see cref="Socket.SendPacketsAsync"/>,
/// which on Linux is sendfile(2) with an offset and a count: the bytes never enter user space.
/// </summary>
internal sealed class SocketSender : IDisposable
{
    /// <summary>A file region goes out as a first sendfile of this many bytes, then in turns of
    /// <see cref="TurnBytes"/>, and the connection yields to the thread pool between them. With inline socket
    /// completions a sendfile whose reader keeps up never blocks, so one connection's 100 MiB body held the socket
    /// engine's thread while the other 49 requests of bench workload b waited to be read (median first byte 110-126
    /// ms against nginx's 60-86). nginx's sendfile_max_chunk is the same idea.</summary>
    private const int FirstChunkBytes = 256 * 1024;

    private const int TurnBytes = 4 * 1024 * 1024;

    private const int TlsCopyBytes = 256 * 1024;

    /// <summary>True while a server's accept loop runs a new connection up to its first wait (a hit's head and first
    /// sendfile): the loop goes back to its next accept instead of giving its core away after the first chunk. With
    /// the yield there, 50 clients connecting at once were accepted over 119 ms, with gaps of 5-6 ms (sched_yield on a
    /// busy core waits out the others' slices), and over 21 ms without it; the heads went out a median 83-94 ms after
    /// the first accept in 2 rounds of 3, and 28-41 ms in every round without it (perf record of the system calls,
    /// bench workload b's 50 warm clients, docs/BENCHMARKS.md).</summary>
    [ThreadStatic]
    internal static bool OnAcceptLoop;

    private readonly Link _link;
    private readonly Socket _socket;
    private readonly SocketAsyncEventArgs _args = new();
    private TaskCompletionSource<SocketError>? _pending;

    public SocketSender(Socket socket)
        : this(new Link(socket))
    {
    }

    public SocketSender(Link link)
    {
        _link = link;
        _socket = link.Socket;
        _args.Completed += (_, args) => _pending!.TrySetResult(args.SocketError);
    }

    /// <summary>Bytes handed to the kernel (or, over TLS, to the TLS session) so far, also by sends that failed
    /// part way.</summary>
    public long BytesSent { get; private set; }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // every response head: no box each time
    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (_link.Tls is not null)
        {
            await _link.Tls.WriteAsync(data, cancellationToken);
            BytesSent += data.Length;
            return;
        }
        while (!data.IsEmpty)
        {
            var sent = await _socket.SendAsync(data, SocketFlags.None, cancellationToken);
            BytesSent += sent;
            data = data[sent..];
        }
    }

    /// <summary>Sends <paramref name="count"/> bytes of <paramref name="file"/> from <paramref name="offset"/>.
    /// The file must hold them: a short file is an error, never a short body.</summary>
    public async ValueTask SendFileAsync(FileStream file, long offset, long count, CancellationToken cancellationToken)
    {
        if (_link.Tls is not null)
        {
            await CopyThroughTlsAsync(file, offset, count, cancellationToken);
            return;
        }
        var turn = FirstChunkBytes;
        while (count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = (int)Math.Min(count, turn);
            _args.SendPacketsElements = [new SendPacketsElement(file, offset, chunk, endOfPacket: false)];
            _pending = new TaskCompletionSource<SocketError>(TaskCreationOptions.RunContinuationsAsynchronously);
            var error = _socket.SendPacketsAsync(_args) ? await _pending.Task : _args.SocketError;
            BytesSent += Math.Clamp(_args.BytesTransferred, 0, chunk);
            if (error != SocketError.Success)
            {
                throw new SocketException((int)error);
            }
            if (_args.BytesTransferred != chunk)
            {
                throw new IOException($"sent {_args.BytesTransferred} of {chunk} file bytes (file shrank?)");
            }
            offset += chunk;
            count -= chunk;
            if (count > 0)
            {
                if (turn == FirstChunkBytes)
                {
                    // The head and the first bytes woke the reader. On the same host its thread was most likely queued
                    // on this core (a loopback wake-up is a synchronous one, so the scheduler places the woken thread
                    // beside its waker), where it waited out this thread's slice while the next turn's sendfile ran:
                    // 0.77 ms of a cold miss's 1.8 ms first byte through our proxy (perf sched timehist). Give the core
                    // away once, as the cache's fill does after its first bytes.
                    if (!OnAcceptLoop)
                    {
                        Thread.Yield();
                    }
                }
                turn = TurnBytes;
                await Task.Yield(); // the other connections' turn
            }
        }
    }

    /// <summary>TLS encrypts in user space, so a file region is read and written through a pooled buffer.</summary>
    private async ValueTask CopyThroughTlsAsync(FileStream file, long offset, long count, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)Math.Min(TlsCopyBytes, Math.Max(count, 1)));
        try
        {
            while (count > 0)
            {
                var read = await RandomAccess.ReadAsync(file.SafeFileHandle, buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)), offset, cancellationToken);
                if (read == 0)
                {
                    throw new IOException($"file ended {count} bytes early (file shrank?)");
                }
                await _link.Tls!.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                BytesSent += read;
                offset += read;
                count -= read;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose() => _args.Dispose();
}
