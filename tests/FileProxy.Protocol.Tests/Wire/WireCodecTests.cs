using System.Text;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

/// <summary>Round trips: what the codec writes, it reads back unchanged.</summary>
public sealed class WireCodecTests
{
    public static TheoryData<string> RequestNames => Samples.RequestNames;

    public static TheoryData<string> ResponseNames => Samples.ResponseNames;

    [Theory]
    [MemberData(nameof(RequestNames))]
    public void Every_request_kind_round_trips(string sample)
    {
        var request = Samples.Requests[sample];

        var decoded = Frames.DecodeRequest(Frames.Request(request));

        decoded.Should().Be(request);
    }

    [Theory]
    [MemberData(nameof(ResponseNames))]
    public void Every_response_kind_round_trips(string sample)
    {
        var (requestOpcode, head) = Samples.Responses[sample];

        var decoded = Frames.DecodeResponse(requestOpcode, Frames.Response(requestOpcode, head));

        decoded.Should().BeEquivalentTo(head);
    }

    [Fact]
    public void GET_request_has_the_documented_big_endian_layout()
    {
        var frame = Frames.Request(new GetRequest("a.txt", Offset: 1, Length: 2, IfVersion: "v"));

        frame.Should().Equal(
            0x46, 0x50, 0x01, 0x01, 0x00, 0x00, 0x00, 26,
            0x00, 0x05, (byte)'a', (byte)'.', (byte)'t', (byte)'x', (byte)'t',
            0, 0, 0, 0, 0, 0, 0, 1,
            0, 0, 0, 0, 0, 0, 0, 2,
            0x00, 0x01, (byte)'v');
    }

    [Fact]
    public void GET_request_defaults_to_the_whole_file_at_any_version()
    {
        var decoded = (GetRequest)Frames.DecodeRequest(Frames.Request(new GetRequest("a")));

        decoded.Offset.Should().Be(0);
        decoded.Length.Should().Be(ProtocolLimits.ToEnd);
        decoded.IfVersion.Should().BeEmpty();
    }

    [Fact]
    public void GET_request_round_trips_the_largest_offset_and_length()
    {
        var request = new GetRequest("a", ulong.MaxValue - 1, ulong.MaxValue, new string('v', ProtocolLimits.MaxVersionBytes));

        Frames.DecodeRequest(Frames.Request(request)).Should().Be(request);
    }

    [Fact]
    public void GET_request_round_trips_a_name_of_exactly_1024_UTF8_bytes()
    {
        var name = new string('é', ProtocolLimits.MaxNameBytes / 2);
        Encoding.UTF8.GetByteCount(name).Should().Be(ProtocolLimits.MaxNameBytes);

        var decoded = (GetRequest)Frames.DecodeRequest(Frames.Request(new GetRequest(name)));

        decoded.Name.Should().Be(name);
    }

    [Fact]
    public void GET_request_carries_an_empty_name_for_the_server_to_refuse()
    {
        var decoded = Frames.DecodeRequest(Frames.Request(new GetRequest("")));

        decoded.Should().Be(new GetRequest(""), "the codec frames names; SafeName decides whether they are acceptable");
    }

    [Fact]
    public void STATS_request_has_an_empty_payload()
    {
        var frame = Frames.Request(new StatsRequest());

        frame.Should().HaveCount(ProtocolLimits.FrameHeaderLength);
        Frames.HeaderOf(frame).Should().Be(new FrameHeader(Opcode.Stats, 0));
    }

    [Fact]
    public void Encoding_a_name_longer_than_1024_UTF8_bytes_throws_ArgumentException()
    {
        var act = () => Frames.Request(new StatRequest(new string('a', ProtocolLimits.MaxNameBytes + 1)));

        act.Should().Throw<ArgumentException>().WithMessage("*1024*");
    }

    [Theory]
    [InlineData(Opcode.Get, Opcode.GetResponse)]
    [InlineData(Opcode.Stat, Opcode.StatResponse)]
    [InlineData(Opcode.Stats, Opcode.StatsResponse)]
    [InlineData(Opcode.Purge, Opcode.PurgeResponse)]
    public void Ok_response_echoes_the_request_opcode_with_the_high_bit_set(Opcode request, Opcode expected)
    {
        var head = new ResponseHead(StatusCode.Ok, "") { File = Samples.File };

        Frames.HeaderOf(Frames.Response(request, head)).Opcode.Should().Be(expected);
    }

    [Theory]
    [InlineData(Opcode.Get, Opcode.GetResponse)]
    [InlineData(Opcode.Purge, Opcode.PurgeResponse)]
    [InlineData(Opcode.Auth, Opcode.AuthResponse)]
    [InlineData((Opcode)0x07, Opcode.ErrorResponse)]
    [InlineData(Opcode.List, Opcode.ListResponse)]
    [InlineData(Opcode.GetResponse, Opcode.ErrorResponse)]
    public void Error_response_uses_the_request_response_opcode_or_the_error_opcode_for_unknown_requests(Opcode request, Opcode expected)
    {
        var frame = Frames.Response(request, ResponseHead.Error(StatusCode.BadRequest, "no"));

        Frames.HeaderOf(frame).Opcode.Should().Be(expected);
    }

    [Fact]
    public void Error_response_has_the_documented_layout()
    {
        var frame = Frames.Response(Opcode.Get, ResponseHead.Error(StatusCode.NotFound, "missing"));

        frame.Should().Equal(
            0x46, 0x50, 0x01, 0x81, 0x00, 0x00, 0x00, 10,
            0x01, 0x00, 0x07, (byte)'m', (byte)'i', (byte)'s', (byte)'s', (byte)'i', (byte)'n', (byte)'g');
    }

    [Theory]
    [InlineData(StatusCode.NotFound, "no such file")]
    [InlineData(StatusCode.BadRequest, "name is empty")]
    [InlineData(StatusCode.BadRequest, "name has a '..' segment")]
    [InlineData(StatusCode.Forbidden, "")]
    [InlineData(StatusCode.UpstreamUnavailable, "origin 127.0.0.1:9000 refused the connection")]
    [InlineData(StatusCode.RangeNotSatisfiable, "offset 11 is past the end of the file (10 bytes)")]
    [InlineData(StatusCode.Busy, "too many connections")]
    [InlineData(StatusCode.InternalError, "internal error; see the server log")]
    [InlineData(StatusCode.VersionMismatch, "version is v2, not v1")]
    [InlineData(StatusCode.UnsupportedVersion, "protocol version 2 is not supported")]
    [InlineData(StatusCode.UpstreamIntegrityError, "digest mismatch")]
    [InlineData(StatusCode.NotSupported, "PURGE is disabled")]
    [InlineData(StatusCode.NotFound, "fichier « données.bin » introuvable")]
    [InlineData(StatusCode.NotFound, "ファイルが見つかりません 😀")]
    public void Error_response_round_trips_status_and_message(StatusCode status, string message)
    {
        var decoded = Frames.DecodeResponse(Opcode.Get, Frames.Response(Opcode.Get, ResponseHead.Error(status, message)));

        decoded.Status.Should().Be(status);
        decoded.Message.Should().Be(message);
        decoded.File.Should().BeNull();
        decoded.IsOk.Should().BeFalse();
    }

    [Fact]
    public void Error_response_to_an_unknown_opcode_decodes_as_an_error_frame()
    {
        var frame = Frames.Response((Opcode)0x42, ResponseHead.Error(StatusCode.BadRequest, "unknown opcode 0x42"));

        var decoded = Frames.DecodeResponse(Opcode.Get, frame);

        decoded.Status.Should().Be(StatusCode.BadRequest, "a client accepts the error frame whatever it asked");
        decoded.Message.Should().Be("unknown opcode 0x42");
    }

    [Theory]
    [InlineData(ResponseSource.Origin)]
    [InlineData(ResponseSource.CacheHit)]
    [InlineData(ResponseSource.CacheMiss)]
    [InlineData(ResponseSource.CacheCoalesced)]
    [InlineData(ResponseSource.PassThrough)]
    [InlineData(ResponseSource.StaleHit)]
    public void GET_Ok_response_round_trips_every_source(ResponseSource source)
    {
        var head = new ResponseHead(StatusCode.Ok, "") { File = Samples.File, Offset = 0, Length = 10, Source = source };

        Frames.DecodeResponse(Opcode.Get, Frames.Response(Opcode.Get, head)).Source.Should().Be(source);
    }

    [Fact]
    public void GET_Ok_response_round_trips_an_empty_range_at_the_end_of_the_file()
    {
        var head = new ResponseHead(StatusCode.Ok, "") { File = Samples.File, Offset = Samples.File.Size, Length = 0 };

        Frames.DecodeResponse(Opcode.Get, Frames.Response(Opcode.Get, head)).Should().BeEquivalentTo(head);
    }

    [Fact]
    public void GET_Ok_response_round_trips_an_empty_file()
    {
        var empty = new FileMetadata(0, "", ContentDigest.Of([]));
        var head = new ResponseHead(StatusCode.Ok, "") { File = empty, Source = ResponseSource.CacheMiss };

        Frames.DecodeResponse(Opcode.Get, Frames.Response(Opcode.Get, head)).Should().BeEquivalentTo(head);
    }

    [Fact]
    public void STATS_response_round_trips_no_counters()
    {
        var head = new ResponseHead(StatusCode.Ok, "origin");

        var decoded = Frames.DecodeResponse(Opcode.Stats, Frames.Response(Opcode.Stats, head));

        decoded.Message.Should().Be("origin");
        decoded.Counters.Should().BeEmpty();
    }

    [Fact]
    public void STATS_response_round_trips_extreme_counter_values_in_order()
    {
        KeyValuePair<string, long>[] counters = [new("max", long.MaxValue), new("zero", 0), new("negative", -1), new("ключ", 7)];
        var head = new ResponseHead(StatusCode.Ok, "proxy") { Counters = counters };

        var decoded = Frames.DecodeResponse(Opcode.Stats, Frames.Response(Opcode.Stats, head));

        decoded.Counters.Should().Equal(counters);
    }

    [Fact]
    public void STATS_response_with_more_counters_than_fit_is_cut_to_one_frame()
    {
        var counters = Enumerable.Range(0, 5000).Select(i => new KeyValuePair<string, long>($"counter-{i:D5}", i)).ToArray();
        var head = new ResponseHead(StatusCode.Ok, "proxy") { Counters = counters };

        var frame = Frames.Response(Opcode.Stats, head);
        var decoded = Frames.DecodeResponse(Opcode.Stats, frame);

        frame.Length.Should().BeLessThanOrEqualTo(WireCodec.MaxResponseFrame);
        decoded.Counters.Should().NotBeEmpty().And.HaveCountLessThan(counters.Length);
        decoded.Counters.Should().Equal(counters.Take(decoded.Counters.Count), "the first counters that fit are kept in order");
    }

    [Fact]
    public void PURGE_Ok_response_carries_only_status_and_message()
    {
        var frame = Frames.Response(Opcode.Purge, new ResponseHead(StatusCode.Ok, ""));

        Frames.PayloadOf(frame).Should().Equal(0x00, 0x00, 0x00);
    }

    [Fact]
    public void Message_longer_than_the_limit_is_cut_to_4096_bytes()
    {
        var message = new string('x', ProtocolLimits.MaxMessageBytes + 500);

        var decoded = Frames.DecodeResponse(Opcode.Get, Frames.Response(Opcode.Get, ResponseHead.Error(StatusCode.NotFound, message)));

        decoded.Message.Should().Be(message[..ProtocolLimits.MaxMessageBytes]);
    }

    [Theory]
    [InlineData("é", 2048)]
    [InlineData("日", 1365)]
    [InlineData("😀", 1024)]
    public void Message_longer_than_the_limit_is_cut_on_a_character_boundary(string character, int expectedCharacters)
    {
        var message = string.Concat(Enumerable.Repeat(character, 3000));

        var decoded = Frames.DecodeResponse(Opcode.Get, Frames.Response(Opcode.Get, ResponseHead.Error(StatusCode.NotFound, message)));

        decoded.Message.Should().Be(string.Concat(Enumerable.Repeat(character, expectedCharacters)));
    }

    [Fact]
    public void Message_cut_inside_a_surrogate_pair_drops_the_whole_pair()
    {
        var message = "a" + string.Concat(Enumerable.Repeat("😀", 1500));

        var decoded = Frames.DecodeResponse(Opcode.Get, Frames.Response(Opcode.Get, ResponseHead.Error(StatusCode.NotFound, message)));

        decoded.Message.Should().Be("a" + string.Concat(Enumerable.Repeat("😀", 1023)), "no replacement character may appear");
    }

    [Fact]
    public void Encoding_an_Ok_GET_response_without_file_metadata_throws_ArgumentException()
    {
        var act = () => Frames.Response(Opcode.Get, new ResponseHead(StatusCode.Ok, ""));

        act.Should().Throw<ArgumentException>();
    }
}
