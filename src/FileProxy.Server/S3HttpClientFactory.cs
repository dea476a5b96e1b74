using System.Net.Sockets;
using Amazon.Runtime;

namespace FileProxy.Server;

/// <summary>
/// The AWS SDK's HTTP connections, made so that the SDK's code never runs on a socket engine thread. Our servers run
/// socket continuations inline on the engine's thread (<c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c>: it doubled
/// small-file requests/s), and the SDK parses an answer's XML with blocking reads inside its continuations: on the
/// engine's thread such a read waits for an event only that thread can deliver, and the process hangs (the native
/// server did at its first request to RGW in 5 starts of 6). Every asynchronous read and write of an SDK connection
/// therefore finishes on the thread pool (one queued work item per read, about 4,000 per GiB of object).
/// </summary>
internal sealed class S3HttpClientFactory(TimeSpan connectTimeout) : HttpClientFactory
{
    public override HttpClient CreateHttpClient(IClientConfig clientConfig)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = connectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            UseProxy = false,
            ConnectCallback = ConnectAsync,
        };
        return new HttpClient(handler) { Timeout = clientConfig.Timeout ?? TimeSpan.FromSeconds(100) };
    }

    // One client for the one S3 client a server has; the SDK keeps it for the client's life.
    public override bool UseSDKHttpClientCaching(IClientConfig clientConfig) => true;

    public override bool DisposeHttpClientsAfterUse(IClientConfig clientConfig) => false;

    public override string? GetConfigUniqueString(IClientConfig clientConfig) => "fileproxy-s3";

    private static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
            await Task.Yield();
            return new PoolContinuationStream(new NetworkStream(socket, ownsSocket: true));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

}

/// <summary>A stream whose asynchronous reads and writes that had to wait resume their caller on the thread pool,
/// whichever thread completed them.</summary>
internal sealed class PoolContinuationStream(Stream inner) : Stream
{
    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = inner.ReadAsync(buffer, cancellationToken);
        return read.IsCompleted ? read : OnPoolAsync(read);
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var write = inner.WriteAsync(buffer, cancellationToken);
        return write.IsCompleted ? write : OnPoolAsync(write);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    // Blocking calls block a pool thread, never the engine's: they pass straight through.
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override int Read(Span<byte> buffer) => inner.Read(buffer);
    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
    public override void Flush() => inner.Flush();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        await base.DisposeAsync();
    }

    // The socket completes the operation on its engine's thread, and an await resumes there: Task.Yield queues
    // the rest, and so the caller's continuation, to the thread pool.
    private static async ValueTask<int> OnPoolAsync(ValueTask<int> pending)
    {
        var read = await pending.ConfigureAwait(false);
        await Task.Yield(); // no synchronization context here: the thread pool
        return read;
    }

    private static async ValueTask OnPoolAsync(ValueTask pending)
    {
        await pending.ConfigureAwait(false);
        await Task.Yield();
    }
}
