using System.Buffers;
using System.Diagnostics;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.Bench;

/// <summary>
/// Where <c>get</c> puts a body, whatever the protocol: read in 1 MiB blocks and, when there is a file, written
/// while the next block is read (two pooled buffers); otherwise discarded.
/// </summary>
internal static class BodySink
{
    private const int BlockBytes = 1024 * 1024;

    /// <summary>Reads <paramref name="read"/> to its end. Returns the time from <paramref name="start"/> (a
    /// <see cref="Stopwatch"/> timestamp) to the first body bytes, and the number of bytes.</summary>
    public static async Task<(TimeSpan TimeToFirstByte, long Bytes)> ReceiveAsync(
        Func<Memory<byte>, CancellationToken, ValueTask<int>> read, string? path, ContentHasher? hash, long start,
        CancellationToken cancellationToken)
    {
        var buffers = new[] { ArrayPool<byte>.Shared.Rent(BlockBytes), ArrayPool<byte>.Shared.Rent(BlockBytes) };
        using var file = path is null ? null : OpenOutput(path);
        var pending = Task.CompletedTask;
        var ttfb = TimeSpan.Zero;
        long position = 0;
        try
        {
            for (var turn = 0; ; turn ^= 1)
            {
                var buffer = buffers[turn];
                var count = await read(buffer.AsMemory(0, BlockBytes), cancellationToken);
                if (position == 0)
                {
                    ttfb = Stopwatch.GetElapsedTime(start);
                }
                await pending;
                if (count == 0)
                {
                    return (ttfb, position);
                }
                var at = position;
                position += count;
                if (file is not null || hash is not null)
                {
                    pending = Task.Run(() =>
                    {
                        hash?.Append(buffer.AsSpan(0, count));
                        if (file is not null)
                        {
                            RandomAccess.Write(file, buffer.AsSpan(0, count), at);
                        }
                    }, CancellationToken.None);
                }
            }
        }
        finally
        {
            try
            {
                await pending;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffers[0]);
                ArrayPool<byte>.Shared.Return(buffers[1]);
            }
        }
    }

    /// <summary>Opens the output, emptied without a truncation of a new file (see <see cref="OutputFile.Empty"/>).</summary>
    private static Microsoft.Win32.SafeHandles.SafeFileHandle OpenOutput(string path)
    {
        var file = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None);
        OutputFile.Empty(file);
        return file;
    }
}
