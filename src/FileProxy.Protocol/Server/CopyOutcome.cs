using System.Buffers;
using System.Net.Sockets;

namespace FileProxy.Protocol.Server;

/// <summary>How a body copy ended, and which side ended it.</summary>
public enum CopyResult
{
    Success,
    /// <summary>The bytes' source failed: the upstream, the object store, the file being sent.</summary>
    UpstreamReadFailed,
    /// <summary>The destination failed: the peer's socket, the file being written.</summary>
    DownstreamWriteFailed,
    Canceled,
}

/// <summary>
/// A copy's outcome as a value: the result and the exception behind it (kept for the log, not thrown), so the caller
/// decides by the side that failed rather than by exception types (the pattern of YARP's StreamCopier).
/// </summary>
public readonly record struct CopyOutcome(CopyResult Result, Exception? Error = null)
{
    public static CopyOutcome Success => default;

    public bool IsSuccess => Result == CopyResult.Success;

    public string Reason => Error?.Message ?? Result.ToString();

    public static CopyOutcome UpstreamFailed(Exception error) =>
        new(error is OperationCanceledException ? CopyResult.Canceled : CopyResult.UpstreamReadFailed, error);

    public static CopyOutcome DownstreamFailed(Exception error) =>
        new(error is OperationCanceledException ? CopyResult.Canceled : CopyResult.DownstreamWriteFailed, error);
}

/// <summary>Body copies into an <see cref="IBodySink"/> that return their outcome instead of throwing.</summary>
public static class BodyCopy
{
    /// <summary>Size of the pooled buffer of a relayed copy.</summary>
    public const int BlockBytes = 1024 * 1024;

    public static async ValueTask<CopyOutcome> WriteAsync(IBodySink sink, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        try
        {
            await sink.WriteAsync(data, cancellationToken);
            return CopyOutcome.Success;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            return CopyOutcome.DownstreamFailed(e);
        }
    }

    /// <summary>Sends a file region. A socket failure is the destination's; a file that ends early is the source's.</summary>
    public static async ValueTask<CopyOutcome> SendFileAsync(IBodySink sink, FileStream file, long offset, long count,
        CancellationToken cancellationToken)
    {
        try
        {
            await sink.SendFileAsync(file, offset, count, cancellationToken);
            return CopyOutcome.Success;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException
            || e is IOException { InnerException: SocketException })
        {
            return CopyOutcome.DownstreamFailed(e);
        }
        catch (IOException e)
        {
            return CopyOutcome.UpstreamFailed(e);
        }
    }

    /// <summary>Copies everything <paramref name="read"/> yields (until it returns 0) into <paramref name="sink"/>
    /// through one pooled buffer; an I/O failure of <paramref name="read"/> is the upstream's, of the sink the
    /// downstream's. Anything else is a bug and is thrown.</summary>
    public static async ValueTask<CopyOutcome> CopyAsync(Func<Memory<byte>, CancellationToken, ValueTask<int>> read, IBodySink sink,
        CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BlockBytes);
        try
        {
            while (true)
            {
                int count;
                try
                {
                    count = await read(buffer, cancellationToken);
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException
                    or Client.UpstreamException or Wire.ProtocolException)
                {
                    return CopyOutcome.UpstreamFailed(e);
                }
                if (count == 0)
                {
                    return CopyOutcome.Success;
                }
                var written = await WriteAsync(sink, buffer.AsMemory(0, count), cancellationToken);
                if (!written.IsSuccess)
                {
                    return written;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>
/// Tells a peer that went away from a real failure, by <see cref="SocketError"/> (Kestrel's SocketConnection does
/// the same): a reset, an abort, a shut-down or broken pipe is a client that left, worth a Debug line; anything else
/// is worth a Warning.
/// </summary>
public static class Disconnects
{
    public static bool IsPeerGone(Exception? e) => e switch
    {
        null => false,
        SocketException s => s.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted
            or SocketError.Shutdown or SocketError.OperationAborted or SocketError.NotConnected or SocketError.Disconnecting,
        ObjectDisposedException or EndOfStreamException => true,
        IOException { InnerException: { } inner } => IsPeerGone(inner),
        _ => false,
    };
}
