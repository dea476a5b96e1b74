using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

public sealed class FrameHeaderTests
{
    [Fact]
    public void Write_then_TryRead_round_trips_opcode_and_length()
    {
        var buffer = new byte[ProtocolLimits.FrameHeaderLength];
        new FrameHeader(Opcode.StatsResponse, 1234).Write(buffer);

        FrameHeader.TryRead(buffer, out var header).Should().BeTrue();

        header.Should().Be(new FrameHeader(Opcode.StatsResponse, 1234));
    }

    [Fact]
    public void Write_produces_magic_version_opcode_and_big_endian_length()
    {
        var buffer = new byte[ProtocolLimits.FrameHeaderLength];

        new FrameHeader(Opcode.Get, 0x0102_0304).Write(buffer);

        buffer.Should().Equal(0x46, 0x50, ProtocolLimits.Version, 0x01, 0x01, 0x02, 0x03, 0x04);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    public void TryRead_returns_false_for_fewer_than_8_bytes(int available)
    {
        var header = Frames.Header(ProtocolLimits.Magic, ProtocolLimits.Version, (byte)Opcode.Get, 10);

        FrameHeader.TryRead(header.AsSpan(0, available), out _).Should().BeFalse();
    }

    [Fact]
    public void TryRead_ignores_bytes_after_the_header()
    {
        byte[] buffer = [.. Frames.Header(ProtocolLimits.Magic, ProtocolLimits.Version, (byte)Opcode.Stat, 3), 1, 2, 3, 4, 5];

        FrameHeader.TryRead(buffer, out var header).Should().BeTrue();

        header.Should().Be(new FrameHeader(Opcode.Stat, 3));
    }

    [Fact]
    public void TryRead_returns_false_for_one_byte_of_a_wrong_magic()
    {
        FrameHeader.TryRead([(byte)'G'], out _).Should().BeFalse("one byte cannot tell a wrong magic yet");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(8)]
    public void TryRead_refuses_a_wrong_magic_as_soon_as_2_bytes_are_there(int available)
    {
        var bytes = "GET / HTTP/1.1\r\n"u8.ToArray();

        var act = () => FrameHeader.TryRead(bytes.AsSpan(0, available), out _);

        act.Should().Throw<ProtocolException>().WithMessage("*magic*")
            .Which.Status.Should().Be(StatusCode.BadRequest);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void TryRead_refuses_an_unsupported_version_with_UnsupportedVersion_status(byte version)
    {
        var header = Frames.Header(ProtocolLimits.Magic, version, (byte)Opcode.Get, 0);

        var act = () => FrameHeader.TryRead(header, out _);

        act.Should().Throw<ProtocolException>().WithMessage($"protocol version {version} is not supported*")
            .Which.Status.Should().Be(StatusCode.UnsupportedVersion);
    }

    [Fact]
    public void TryRead_accepts_a_payload_of_exactly_MaxFrameLength()
    {
        var header = Frames.Header(ProtocolLimits.Magic, ProtocolLimits.Version, (byte)Opcode.StatsResponse, ProtocolLimits.MaxFrameLength);

        FrameHeader.TryRead(header, out var parsed).Should().BeTrue();

        parsed.PayloadLength.Should().Be(ProtocolLimits.MaxFrameLength);
    }

    [Theory]
    [InlineData((uint)ProtocolLimits.MaxFrameLength + 1)]
    [InlineData(0x8000_0000U)]
    [InlineData(uint.MaxValue)]
    public void TryRead_refuses_a_payload_longer_than_MaxFrameLength(uint length)
    {
        var header = Frames.Header(ProtocolLimits.Magic, ProtocolLimits.Version, (byte)Opcode.Get, length);

        var act = () => FrameHeader.TryRead(header, out _);

        act.Should().Throw<ProtocolException>().WithMessage($"*{length} bytes exceeds the limit*")
            .Which.Status.Should().Be(StatusCode.BadRequest);
    }

    [Fact]
    public void TryRead_passes_an_unknown_opcode_through_for_the_codec_to_refuse()
    {
        var header = Frames.Header(ProtocolLimits.Magic, ProtocolLimits.Version, 0x42, 0);

        FrameHeader.TryRead(header, out var parsed).Should().BeTrue();

        parsed.Opcode.Should().Be((Opcode)0x42);
    }
}
