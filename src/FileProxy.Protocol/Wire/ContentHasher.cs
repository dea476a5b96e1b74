using System.Runtime.InteropServices;
using FileProxy.Protocol.Native;

namespace FileProxy.Protocol.Wire;

/// <summary>Computes a <see cref="ContentDigest"/> over data fed in order, in pieces: with BLAKE3's C implementation
/// where the program has it (<see cref="Blake3Native"/>), else with the managed package.</summary>
public sealed unsafe class ContentHasher : IDisposable
{
    private readonly Blake3.Hasher? _managed;
    private void* _native;

    public ContentHasher()
        : this(Blake3Native.Enabled)
    {
    }

    /// <summary>A hasher on the C implementation (<paramref name="native"/>, which must be loadable) or the managed one.</summary>
    internal ContentHasher(bool native)
    {
        if (native)
        {
            _native = NativeMemory.AlignedAlloc(Blake3Native.StateBytes, 64);
            Blake3Native.Init(_native);
        }
        else
        {
            _managed = Blake3.Hasher.New();
        }
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        if (_native is null)
        {
            _managed!.Update(data);
            return;
        }
        fixed (byte* input = data)
        {
            Blake3Native.Update(_native, input, (nuint)data.Length);
        }
    }

    /// <summary>The digest of everything appended; the hasher then starts again, empty.</summary>
    public ContentDigest Finish()
    {
        Span<byte> digest = stackalloc byte[ContentDigest.Length];
        if (_native is null)
        {
            _managed!.Finalize(digest);
            _managed.Reset();
        }
        else
        {
            fixed (byte* output = digest)
            {
                Blake3Native.Finalize(_native, output, ContentDigest.Length);
            }
            Blake3Native.Init(_native);
        }
        return new ContentDigest(digest);
    }

    public void Dispose()
    {
        _managed?.Dispose();
        if (_native is not null)
        {
            NativeMemory.AlignedFree(_native);
            _native = null;
        }
    }
}
