using System.Buffers;
using Amazon.S3.Model;
using FileProxy.Protocol.Server;

namespace FileProxy.Server;

/// <summary>
/// A response body read from an S3 GET as it is sent: the next block is read from the object store while the last
/// one goes out, through two pooled buffers, so a 1 GiB object takes the same memory as a 1 MiB one. An object
/// store answer that ends early cuts the connection (the head is out), never pads or mixes in other bytes.
/// </summary>
internal sealed class S3Body(GetObjectResponse response, long length) : IResponseBody
{
    /// <summary>Per buffer; two per body being sent. 256 KiB reads kept RGW on loopback at full speed.</summary>
    public const int BlockBytes = 256 * 1024;

    private int _disposed;

    public long Length { get; } = length;

    public bool TryCopyTo(Span<byte> destination) => false;

    public async ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken)
    {
        var written = CopyOutcome.Success;
        long sent;
        try
        {
            sent = await PumpAsync(response.ResponseStream, Length, async (data, token) =>
            {
                written = await BodyCopy.WriteAsync(sink, data, token);
                if (!written.IsSuccess)
                {
                    throw new OperationCanceledException(); // stops the pump; the outcome says why
                }
            }, cancellationToken);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return written.IsSuccess ? CopyOutcome.UpstreamFailed(e) : written;
        }
        return sent == Length ? CopyOutcome.Success
            : CopyOutcome.UpstreamFailed(new IOException($"the object store's answer ended after {sent} of {Length} bytes"));
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            response.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Reads up to <paramref name="length"/> bytes from <paramref name="source"/> and hands them to
    /// <paramref name="consume"/> in order, reading the next block while the last is consumed. Returns the bytes
    /// read (fewer when the source ends early).</summary>
    public static async Task<long> PumpAsync(Stream source, long length, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> consume,
        CancellationToken cancellationToken)
    {
        byte[][] buffers = [ArrayPool<byte>.Shared.Rent(BlockBytes), ArrayPool<byte>.Shared.Rent(BlockBytes)];
        var consuming = Task.CompletedTask;
        long done = 0;
        try
        {
            for (var block = 0; done < length; block ^= 1)
            {
                var buffer = buffers[block];
                var want = (int)Math.Min(BlockBytes, length - done);
                var filled = 0;
                while (filled < want)
                {
                    var read = await source.ReadAsync(buffer.AsMemory(filled, want - filled), cancellationToken);
                    if (read == 0)
                    {
                        break;
                    }
                    filled += read;
                }
                await consuming;
                if (filled == 0)
                {
                    break;
                }
                done += filled;
                consuming = consume(buffer.AsMemory(0, filled), cancellationToken).AsTask();
                if (filled < want)
                {
                    break;
                }
            }
            await consuming;
            return done;
        }
        finally
        {
            // A consumer still running holds a buffer: give them back only once it has finished, failed or not.
            try
            {
                await consuming;
            }
            catch (Exception) when (!consuming.IsCompletedSuccessfully)
            {
                // Already thrown to the caller above, or the caller is leaving because of another failure.
            }
            ArrayPool<byte>.Shared.Return(buffers[0]);
            ArrayPool<byte>.Shared.Return(buffers[1]);
        }
    }
}
