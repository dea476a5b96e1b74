using System.Buffers;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Protocol.Client;

/// <summary>
/// Copies a GET body into a file at the wire's pace. Three stages run at once on a ring of pooled blocks: the
/// socket fills block k+2 while block k+1 is hashed and block k is written (hashing and writing each keep their
/// order; the file is only ever written front to back). Used by the client's download and the proxy's cache fill.
/// </summary>
public static class BodyCopier
{
    public const int BlockBytes = 1024 * 1024;
    private const int Blocks = 4;

    /// <summary>Copies the rest of <paramref name="response"/>'s body to <paramref name="file"/> from
    /// <paramref name="fileOffset"/>, feeding <paramref name="hash"/> in order. <paramref name="written"/> is called
    /// with the file length written so far, in order, after each block is in the file.</summary>
    public static async Task<long> CopyToFileAsync(GetResponse response, SafeFileHandle file, long fileOffset,
        ContentHasher? hash, Action<long>? written, CancellationToken cancellationToken)
    {
        // Blocks are rented only once bytes are there to read, and given back whenever the sender goes quiet: a
        // thousand stalled fills hold no buffers, only their sockets.
        var buffers = new byte[]?[Blocks];
        var busy = new Task[Blocks];
        Array.Fill(busy, Task.CompletedTask);
        var writing = Task.CompletedTask;
        var hashing = Task.CompletedTask;
        var position = fileOffset;
        try
        {
            for (var block = 0; ; block = (block + 1) % Blocks)
            {
                if (!response.HasBufferedBytes && response.Remaining > 0)
                {
                    GiveBackIdle(buffers, busy);
                    await response.WaitForBytesAsync(cancellationToken);
                }
                await busy[block];
                var buffer = buffers[block] ??= ArrayPool<byte>.Shared.Rent(BlockBytes);
                var read = await FillAsync(response, buffer, cancellationToken);
                if (read == 0)
                {
                    await Task.WhenAll(writing, hashing);
                    return position - fileOffset;
                }
                var at = position;
                position += read;
                writing = AfterAsync(writing, () =>
                {
                    RandomAccess.Write(file, buffer.AsSpan(0, read), at);
                    written?.Invoke(at + read);
                });
                if (hash is not null)
                {
                    hashing = AfterAsync(hashing, () => hash.Append(buffer.AsSpan(0, read)));
                }
                busy[block] = Task.WhenAll(writing, hashing);
            }
        }
        finally
        {
            try
            {
                await Task.WhenAll(busy);
            }
            finally
            {
                GiveBackIdle(buffers, busy);
            }
        }
    }

    /// <summary>Returns the blocks no stage is using any more to the pool.</summary>
    private static void GiveBackIdle(byte[]?[] buffers, Task[] busy)
    {
        for (var i = 0; i < buffers.Length; i++)
        {
            if (buffers[i] is { } buffer && busy[i].IsCompleted)
            {
                buffers[i] = null;
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>Reads until the block is full or the body ends, but returns early rather than wait on a slow
    /// sender when some bytes are already in hand (so a fill's readers see bytes as they arrive).</summary>
    private static async ValueTask<int> FillAsync(GetResponse response, byte[] buffer, CancellationToken cancellationToken)
    {
        var filled = await response.ReadAsync(buffer, cancellationToken);
        while (filled > 0 && filled < buffer.Length && response.Remaining > 0 && response.HasBufferedBytes)
        {
            var more = await response.ReadAsync(buffer.AsMemory(filled), cancellationToken);
            if (more == 0)
            {
                break;
            }
            filled += more;
        }
        return filled;
    }

    private static async Task AfterAsync(Task previous, Action next)
    {
        await previous.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        next();
    }
}
