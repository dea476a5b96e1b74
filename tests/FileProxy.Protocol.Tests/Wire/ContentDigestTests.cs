using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

public sealed class ContentDigestTests
{
    [Fact]
    public void Of_computes_SHA256_and_prints_lowercase_hex()
    {
        ContentDigest.Of("abc"u8).ToString()
            .Should().Be("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
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
