using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Native;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Integrity;

/// <summary>The native executables hash with BLAKE3's C implementation and <c>dotnet run</c> with the managed package:
/// both must compute the same digest for every length and every way of splitting the bytes into appends, or a file
/// verified by one would fail at the other.</summary>
public sealed class NativeBlake3Tests
{
    private const string NotBuilt = "BLAKE3's C library is not built here: scripts/blake3.sh builds it (a C compiler and Debian's librust-blake3-dev)";

    // Lengths around BLAKE3's 64-byte block and 1 KiB chunk, and past the 16 chunks its widest (AVX-512) path takes at once.
    public static TheoryData<int> Lengths => [0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2049, 16 * 1024 - 1, 16 * 1024 + 1, 65_537, 1_048_576 + 17, 3_000_003];

    [SkippableTheory]
    [MemberData(nameof(Lengths))]
    public void The_C_and_the_managed_BLAKE3_agree_however_the_bytes_are_appended(int length)
    {
        Skip.IfNot(Blake3Native.IsLoadable(), NotBuilt);
        var data = Fetch.RandomBytes(length, seed: length);
        var expected = Digest(data, native: false, [length]);

        foreach (var pieces in new[] { new[] { length }, [1, 7, 1000], [64 * 1024 + 1], [512 * 1024], [3, 1024, 5000, 16 * 1024 + 7] })
        {
            Digest(data, native: true, pieces).Should().Be(expected, $"{length} bytes appended in pieces of {string.Join(", ", pieces)} (repeating)");
        }
    }

    [SkippableFact]
    public void The_C_BLAKE3_gives_the_published_digest_of_nothing_and_starts_again_after_each_finish()
    {
        Skip.IfNot(Blake3Native.IsLoadable(), NotBuilt);
        using var hash = new ContentHasher(native: true);
        hash.Append("abc"u8);
        var abc = hash.Finish();
        var empty = hash.Finish();
        hash.Append("abc"u8);

        empty.ToString().Should().Be("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        hash.Finish().Should().Be(abc);
        abc.ToString().Should().Be("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
    }

    [SkippableFact]
    public void This_test_process_hashes_with_the_C_implementation_when_it_is_built()
    {
        Skip.IfNot(File.Exists(Path.Combine(AppContext.BaseDirectory, "libblake3.so")), NotBuilt);
        Blake3Native.Enabled.Should().BeTrue("the test project switches it on beside the library, so every in-process server, " +
            "proxy and client here hashes with C while the programs started with dotnet run hash with the managed package");
    }

    private static ContentDigest Digest(byte[] data, bool native, int[] pieces)
    {
        using var hash = new ContentHasher(native);
        var offset = 0;
        for (var i = 0; offset < data.Length; i++)
        {
            var take = Math.Min(pieces[i % pieces.Length], data.Length - offset);
            hash.Append(data.AsSpan(offset, take));
            offset += take;
        }
        return hash.Finish();
    }
}
