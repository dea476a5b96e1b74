using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Server;

public sealed class ByteRangeTests
{
    [Theory]
    [InlineData(0UL, ProtocolLimits.ToEnd, 100L, 0L, 100L)]
    [InlineData(10UL, 20UL, 100L, 10L, 20L)]
    [InlineData(90UL, 20UL, 100L, 90L, 10L)]
    [InlineData(0UL, 1000UL, 100L, 0L, 100L)]
    [InlineData(99UL, ProtocolLimits.ToEnd, 100L, 99L, 1L)]
    [InlineData(0UL, 0UL, 100L, 0L, 0L)]
    [InlineData(100UL, 10UL, 100L, 100L, 0L)]
    [InlineData(100UL, ProtocolLimits.ToEnd, 100L, 100L, 0L)]
    [InlineData(0UL, ProtocolLimits.ToEnd, 0L, 0L, 0L)]
    [InlineData(0UL, ProtocolLimits.ToEnd, long.MaxValue, 0L, long.MaxValue)]
    public void TryResolve_clips_the_length_at_the_end_of_the_file(ulong offset, ulong length, long size, long expectedOffset, long expectedLength)
    {
        ByteRange.TryResolve(offset, length, size, out var range).Should().BeTrue();

        range.Should().Be(new ByteRange(expectedOffset, expectedLength));
        range.End.Should().BeLessThanOrEqualTo(size);
    }

    [Theory]
    [InlineData(101UL, 0UL, 100L)]
    [InlineData(101UL, ProtocolLimits.ToEnd, 100L)]
    [InlineData(1UL, 1UL, 0L)]
    [InlineData(ulong.MaxValue, 1UL, 100L)]
    [InlineData(0x8000_0000_0000_0000UL, 1UL, long.MaxValue)]
    public void TryResolve_refuses_an_offset_past_the_end(ulong offset, ulong length, long size)
    {
        ByteRange.TryResolve(offset, length, size, out var range).Should().BeFalse();

        range.Should().Be(default(ByteRange));
    }

    [Fact]
    public void NotSatisfiable_answers_RangeNotSatisfiable_with_offset_and_size()
    {
        var head = ByteRange.NotSatisfiable(101, 100);

        head.Status.Should().Be(StatusCode.RangeNotSatisfiable);
        head.Message.Should().Contain("101").And.Contain("100 bytes");
    }
}
