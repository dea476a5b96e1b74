namespace FileProxy.Protocol.Wire;

/// <summary>Computes a <see cref="ContentDigest"/> over data fed in order, in pieces.</summary>
public sealed class ContentHasher : IDisposable
{
    private readonly Blake3.Hasher _hasher = Blake3.Hasher.New();

    public void Append(ReadOnlySpan<byte> data) => _hasher.Update(data);

    public ContentDigest Finish()
    {
        Span<byte> digest = stackalloc byte[ContentDigest.Length];
        _hasher.Finalize(digest);
        _hasher.Reset();
        return new ContentDigest(digest);
    }

    public void Dispose() => _hasher.Dispose();
}
