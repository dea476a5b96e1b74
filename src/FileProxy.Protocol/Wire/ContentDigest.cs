
namespace FileProxy.Protocol.Wire;

/// <summary>A BLAKE3 digest (256 bits) of a whole file's content; see docs/PROTOCOL.md for why BLAKE3.</summary>
public readonly struct ContentDigest : IEquatable<ContentDigest>
{
    public const int Length = 32;
    private readonly byte[]? _bytes;

    public ContentDigest(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length)
        {
            throw new ArgumentException($"a digest is {Length} bytes", nameof(bytes));
        }
        _bytes = bytes.ToArray();
    }

    public ReadOnlySpan<byte> Bytes => _bytes ?? new byte[Length];

    public static ContentDigest Of(ReadOnlySpan<byte> content)
    {
        using var hash = new ContentHasher();
        hash.Append(content);
        return hash.Finish();
    }

    public static ContentDigest Parse(string hex) => new(Convert.FromHexString(hex));

    /// <summary>Hashes an open file from its start to its end; returns the digest and the bytes hashed.</summary>
    public static async Task<(ContentDigest Digest, long Bytes)> OfFileAsync(Microsoft.Win32.SafeHandles.SafeFileHandle file,
        CancellationToken cancellationToken = default)
    {
        using var hash = new ContentHasher();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1024 * 1024);
        try
        {
            long offset = 0;
            int read;
            while ((read = await RandomAccess.ReadAsync(file, buffer, offset, cancellationToken)) > 0)
            {
                hash.Append(buffer.AsSpan(0, read));
                offset += read;
            }
            return (hash.Finish(), offset);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public override string ToString() => Convert.ToHexStringLower(Bytes);

    public bool Equals(ContentDigest other) => Bytes.SequenceEqual(other.Bytes);

    public override bool Equals(object? obj) => obj is ContentDigest other && Equals(other);

    public override int GetHashCode() => BitConverter.ToInt32(Bytes);

    public static bool operator ==(ContentDigest left, ContentDigest right) => left.Equals(right);

    public static bool operator !=(ContentDigest left, ContentDigest right) => !left.Equals(right);
}
