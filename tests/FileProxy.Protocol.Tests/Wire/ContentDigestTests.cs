using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

public sealed class ContentDigestTests
{
    [Fact]
    public void Of_computes_BLAKE3_and_prints_lowercase_hex()
    {
        ContentDigest.Of("abc"u8).ToString()
            .Should().Be("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        ContentDigest.Of([]).ToString()
            .Should().Be("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    }

    [Fact]
    public void A_hasher_fed_in_pieces_gives_the_one_shot_digest()
    {
        var data = new byte[3 * 1024 * 1024 + 17];
        new Random(5).NextBytes(data);
        using var hasher = new ContentHasher();
        for (var offset = 0; offset < data.Length; offset += 65_521)
        {
            hasher.Append(data.AsSpan(offset, Math.Min(65_521, data.Length - offset)));
        }

        hasher.Finish().Should().Be(ContentDigest.Of(data));
    }

    [Fact]
    public void Parse_round_trips_ToString_and_is_equal()
    {
        var digest = ContentDigest.Of("hello"u8);

        var parsed = ContentDigest.Parse(digest.ToString());

        parsed.Should().Be(digest);
        (parsed == digest).Should().BeTrue();
        parsed.GetHashCode().Should().Be(digest.GetHashCode());
    }

    [Fact]
    public void Different_content_gives_different_digests()
    {
        (ContentDigest.Of("a"u8) != ContentDigest.Of("b"u8)).Should().BeTrue();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    public void Constructor_refuses_a_length_other_than_32_bytes(int length)
    {
        var act = () => new ContentDigest(new byte[length]);

        act.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Default_digest_reads_as_32_zero_bytes()
    {
        default(ContentDigest).Should().Be(new ContentDigest(new byte[ContentDigest.Length]));
    }
}
