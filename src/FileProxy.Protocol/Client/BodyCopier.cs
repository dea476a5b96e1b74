using System.Buffers;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Protocol.Client;

/// <summary>
/// Copies a GET body into a file at the wire's pace: while one block is hashed and written, the next is read from
/// the socket (two pooled buffers). Used by the client's download and by the proxy's cache fill.
/// </summary>
public static class BodyCopier
{
    public const int BlockBytes = 1024 * 1024;

    /// <summary>Copies the rest of <paramref name="response"/>'s body to <paramref name="file"/> from
    /// <paramref name="fileOffset"/>, feeding <paramref name="hash"/> in order. <paramref name="written"/> is called
    /// with the file length written so far, after each block is in the file.</summary>
    public static async Task<long> CopyToFileAsync(GetResponse response, SafeFileHandle file, long fileOffset,
        IncrementalHash? hash, Action<long>? written, CancellationToken cancellationToken)
    {
        var buffers = new[] { ArrayPool<byte>.Shared.Rent(BlockBytes), ArrayPool<byte>.Shared.Rent(BlockBytes) };
        var pending = Task.CompletedTask;
        var position = fileOffset;
        try
        {
            for (var turn = 0; ; turn ^= 1)
            {
                var buffer = buffers[turn];
                var read = await response.ReadAsync(buffer, cancellationToken);
                await pending;
                if (read == 0)
                {
                    return position - fileOffset;
                }
                var at = position;
                position += read;
                pending = Task.Run(() =>
                {
                    hash?.AppendData(buffer, 0, read);
                    RandomAccess.Write(file, buffer.AsSpan(0, read), at);
                    written?.Invoke(at + read);
                }, CancellationToken.None);
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
}
