using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

/// <summary>Frames a peer could send but the codec must refuse, always with <see cref="ProtocolException"/>.</summary>
public sealed class WireCodecRefusalTests
{
    public static TheoryData<string> NonEmptyRequestNames => Samples.NonEmptyRequestNames;

    public static TheoryData<string> RequestNames => Samples.RequestNames;

    public static TheoryData<string> ResponseNames => Samples.ResponseNames;

    [Theory]
    [MemberData(nameof(NonEmptyRequestNames))]
    public void Every_truncated_request_payload_throws_ProtocolException(string sample)
    {
        var frame = Frames.Request(Samples.Requests[sample]);
        var opcode = Frames.HeaderOf(frame).Opcode;
        var payload = Frames.PayloadOf(frame);

        for (var length = 0; length < payload.Length; length++)
        {
            var prefix = payload[..length];
            var act = () => WireCodec.DecodeRequest(opcode, prefix);
            act.Should().Throw<ProtocolException>("a {0}-byte prefix of a {1}-byte payload is truncated", length, payload.Length);
        }
    }

    [Theory]
    [MemberData(nameof(ResponseNames))]
    public void Every_truncated_response_payload_throws_ProtocolException(string sample)
    {
        var (requestOpcode, head) = Samples.Responses[sample];
        var frame = Frames.Response(requestOpcode, head);
        var header = Frames.HeaderOf(frame);
        var payload = Frames.PayloadOf(frame);

        for (var length = 0; length < payload.Length; length++)
        {
            var prefix = payload[..length];
            var act = () => WireCodec.DecodeResponse(requestOpcode, header, prefix);
            act.Should().Throw<ProtocolException>("a {0}-byte prefix of a {1}-byte payload is truncated", length, payload.Length);
        }
    }

    [Theory]
    [MemberData(nameof(RequestNames))]
    public void Request_payload_with_a_trailing_byte_throws_ProtocolException(string sample)
    {
        // Two bytes: GET and STAT take one optional flags byte at the end (RequestFlagsTests); the second trails.
        var frame = Frames.Request(Samples.Requests[sample]);
        byte[] payload = [.. Frames.PayloadOf(frame), 0x00, 0x00];

        var act = () => WireCodec.DecodeRequest(Frames.HeaderOf(frame).Opcode, payload);

        act.Should().Throw<ProtocolException>().WithMessage("*trailing*");
    }

    [Theory]
    [MemberData(nameof(ResponseNames))]
    public void Response_payload_with_a_trailing_byte_throws_ProtocolException(string sample)
    {
        var (requestOpcode, head) = Samples.Responses[sample];
        var frame = Frames.Response(requestOpcode, head);
        byte[] payload = [.. Frames.PayloadOf(frame), 0x00];

        var act = () => WireCodec.DecodeResponse(requestOpcode, Frames.HeaderOf(frame), payload);

        act.Should().Throw<ProtocolException>().WithMessage("*trailing*");
    }

    [Theory]
    [MemberData(nameof(ResponseNames))]
    public void Response_payload_with_any_byte_corrupted_decodes_or_throws_only_ProtocolException(string sample)
    {
        var (requestOpcode, head) = Samples.Responses[sample];
        var frame = Frames.Response(requestOpcode, head);
        var header = Frames.HeaderOf(frame);
        var payload = Frames.PayloadOf(frame);

        for (var i = 0; i < payload.Length; i++)
        {
            foreach (var value in new byte[] { 0x00, 0x7F, 0x80, 0xFF })
            {
                var corrupt = (byte[])payload.Clone();
                corrupt[i] = value;
                try
                {
                    WireCodec.DecodeResponse(requestOpcode, header, corrupt);
                }
                catch (ProtocolException)
                {
                }
                catch (Exception e)
                {
                    throw new InvalidOperationException($"byte {i} set to 0x{value:x2} threw {e.GetType().Name}", e);
                }
            }
        }
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x07)]
    [InlineData(0x7F)]
    [InlineData(0x81)]
    [InlineData(0xFF)]
    public void Request_with_an_unknown_opcode_throws_ProtocolException(byte opcode)
    {
        var act = () => WireCodec.DecodeRequest((Opcode)opcode, []);

        act.Should().Throw<ProtocolException>().WithMessage("*unknown opcode*")
            .Which.Status.Should().Be(StatusCode.BadRequest);
    }

    [Fact]
    public void Name_longer_than_1024_bytes_in_a_request_throws_ProtocolException()
    {
        var payload = new PayloadBuilder().Str16(new string('a', ProtocolLimits.MaxNameBytes + 1)).ToArray();

        var act = () => WireCodec.DecodeRequest(Opcode.Stat, payload);

        act.Should().Throw<ProtocolException>().WithMessage("name is 1025 bytes*1024*");
    }

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { (byte)'a', 0xC3 })]
    [InlineData(new byte[] { 0xC3, 0x28 })]
    [InlineData(new byte[] { 0xC0, 0xAF })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })]
    public void Name_that_is_not_valid_UTF8_throws_ProtocolException(byte[] name)
    {
        var payload = new PayloadBuilder().Str16(name).ToArray();

        var act = () => WireCodec.DecodeRequest(Opcode.Purge, payload);

        act.Should().Throw<ProtocolException>().WithMessage("name is not valid UTF-8");
    }

    [Fact]
    public void If_version_longer_than_128_bytes_throws_ProtocolException()
    {
        var payload = new PayloadBuilder().Str16("a").U64(0).U64(ProtocolLimits.ToEnd)
            .Str16(new string('v', ProtocolLimits.MaxVersionBytes + 1)).ToArray();

        var act = () => WireCodec.DecodeRequest(Opcode.Get, payload);

        act.Should().Throw<ProtocolException>().WithMessage("if-version*");
    }

    [Fact]
    public void Message_longer_than_4096_bytes_in_a_response_throws_ProtocolException()
    {
        var payload = new PayloadBuilder().U8((byte)StatusCode.NotFound)
            .Str16(new string('m', ProtocolLimits.MaxMessageBytes + 1)).ToArray();

        var act = () => WireCodec.DecodeResponse(Opcode.Get, new FrameHeader(Opcode.GetResponse, payload.Length), payload);

        act.Should().Throw<ProtocolException>().WithMessage("message*");
    }

    [Theory]
    [InlineData(Opcode.Get, Opcode.StatResponse)]
    [InlineData(Opcode.Get, Opcode.Get)]
    [InlineData(Opcode.Stat, Opcode.PurgeResponse)]
    [InlineData(Opcode.Stats, Opcode.GetResponse)]
    [InlineData(Opcode.Purge, Opcode.Purge)]
    public void Response_opcode_that_does_not_match_the_request_throws_ProtocolException(Opcode request, Opcode response)
    {
        var payload = new PayloadBuilder().U8((byte)StatusCode.NotFound).Str16("").ToArray();

        var act = () => WireCodec.DecodeResponse(request, new FrameHeader(response, payload.Length), payload);

        act.Should().Throw<ProtocolException>().WithMessage($"expected a response to {request}*");
    }

    [Fact]
    public void Error_opcode_frame_with_Ok_status_throws_ProtocolException()
    {
        var payload = new PayloadBuilder().U8((byte)StatusCode.Ok).Str16("").ToArray();

        var act = () => WireCodec.DecodeResponse(Opcode.Purge, new FrameHeader(Opcode.ErrorResponse, payload.Length), payload);

        act.Should().Throw<ProtocolException>().WithMessage("*Ok status*");
    }

    [Theory]
    [InlineData(0, 1001)]
    [InlineData(1000, 1)]
    [InlineData(1001, 0)]
    [InlineData(990, 20)]
    public void GET_response_whose_range_exceeds_the_file_size_throws_ProtocolException(long offset, long length)
    {
        var act = () => DecodeGetOk(size: 1000, offset, length);

        act.Should().Throw<ProtocolException>().WithMessage("*exceeds file size 1000");
    }

    [Theory]
    [InlineData(long.MaxValue, long.MaxValue)]
    [InlineData(1, long.MaxValue)]
    [InlineData(long.MaxValue, 1)]
    public void GET_response_whose_offset_plus_length_overflows_throws_ProtocolException(long offset, long length)
    {
        // offset + length wraps to a negative number in unchecked arithmetic, which is not "> size".
        var act = () => DecodeGetOk(size: 1000, offset, length);

        act.Should().Throw<ProtocolException>("a range past the end of a 1000-byte file must be refused however large it is");
    }

    [Fact]
    public void GET_response_whose_range_ends_at_the_file_size_is_accepted()
    {
        var head = DecodeGetOk(size: 1000, offset: 400, length: 600);

        head.Offset.Should().Be(400);
        head.Length.Should().Be(600);
    }

    [Theory]
    [InlineData(0x8000_0000_0000_0000UL)]
    [InlineData(ulong.MaxValue)]
    public void GET_response_with_a_size_beyond_long_range_throws_ProtocolException(ulong size)
    {
        var payload = new PayloadBuilder().U8((byte)StatusCode.Ok).Str16("")
            .U64(size).Str16("v1").Bytes(Samples.Digest.Bytes).U64(0).U64(0).U8(0).ToArray();

        var act = () => WireCodec.DecodeResponse(Opcode.Get, new FrameHeader(Opcode.GetResponse, payload.Length), payload);

        act.Should().Throw<ProtocolException>().WithMessage("size * is out of range");
    }

    [Fact]
    public void STATS_response_claiming_more_counters_than_it_carries_throws_ProtocolException()
    {
        var payload = new PayloadBuilder().U8((byte)StatusCode.Ok).Str16("").U16(ushort.MaxValue).ToArray();

        var act = () => WireCodec.DecodeResponse(Opcode.Stats, new FrameHeader(Opcode.StatsResponse, payload.Length), payload);

        act.Should().Throw<ProtocolException>();
    }

    [Fact]
    public void Non_Ok_response_carrying_Ok_fields_throws_ProtocolException()
    {
        var ok = Frames.Response(Opcode.Stat, new ResponseHead(StatusCode.Ok, "") { File = Samples.File });
        var payload = Frames.PayloadOf(ok);
        payload[0] = (byte)StatusCode.NotFound;

        var act = () => WireCodec.DecodeResponse(Opcode.Stat, Frames.HeaderOf(ok), payload);

        act.Should().Throw<ProtocolException>().WithMessage("*trailing*");
    }

    private static ResponseHead DecodeGetOk(long size, long offset, long length)
    {
        var payload = new PayloadBuilder().U8((byte)StatusCode.Ok).Str16("")
            .U64((ulong)size).Str16("v1").Bytes(Samples.Digest.Bytes)
            .U64((ulong)offset).U64((ulong)length).U8((byte)ResponseSource.Origin).ToArray();
        return WireCodec.DecodeResponse(Opcode.Get, new FrameHeader(Opcode.GetResponse, payload.Length), payload);
    }

    [Theory]
    [InlineData("v1\nname /etc/shadow")]
    [InlineData("v1\u001b[2K")]
    [InlineData("v1\u0085")]
    public void A_version_tag_with_a_control_character_throws_ProtocolException(string version)
    {
        var (requestOpcode, head) = Samples.Responses["STAT Ok"];
        var frame = Frames.Response(requestOpcode, head with { File = head.File! with { Version = version } });

        var response = () => WireCodec.DecodeResponse(requestOpcode, Frames.HeaderOf(frame), Frames.PayloadOf(frame));
        var requestFrame = Frames.Request(new GetRequest("a.bin", 0, 1, version));
        var request = () => WireCodec.DecodeRequest(Opcode.Get, Frames.PayloadOf(requestFrame));

        response.Should().Throw<ProtocolException>().WithMessage("*control character*");
        request.Should().Throw<ProtocolException>().WithMessage("*control character*");
    }
}
