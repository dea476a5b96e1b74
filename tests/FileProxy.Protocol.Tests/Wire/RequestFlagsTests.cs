using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

/// <summary>The optional flags byte that ends a GET or STAT, and its one flag so far: the tier's hop mark.</summary>
public sealed class RequestFlagsTests
{
    [Fact]
    public void A_request_without_flags_is_byte_for_byte_what_older_peers_send()
    {
        var frame = Frames.Request(new StatRequest("a"));

        frame.Should().Equal(0x46, 0x50, 0x01, 0x02, 0, 0, 0, 3, 0x00, 0x01, (byte)'a');
    }

    [Fact]
    public void A_marked_STAT_ends_with_the_flags_byte_01()
    {
        var frame = Frames.Request(new StatRequest("a", Forwarded: true));

        frame.Should().Equal(0x46, 0x50, 0x01, 0x02, 0, 0, 0, 4, 0x00, 0x01, (byte)'a', 0x01);
    }

    [Fact]
    public void A_marked_GET_ends_with_the_flags_byte_after_its_if_version()
    {
        var frame = Frames.Request(new GetRequest("a", 1, 2, "v", Forwarded: true));

        Frames.PayloadOf(frame)[^1].Should().Be(RequestFlags.Forwarded);
        frame.Length.Should().Be(8 + 2 + 1 + 16 + 3 + 1);
    }

    [Fact]
    public void Marked_requests_round_trip()
    {
        var get = new GetRequest("dir/a.bin", 7, 9, "v1", Forwarded: true);
        var stat = new StatRequest("dir/a.bin", Forwarded: true);

        Frames.DecodeRequest(Frames.Request(get)).Should().Be(get);
        Frames.DecodeRequest(Frames.Request(stat)).Should().Be(stat);
    }

    [Fact]
    public void A_flags_byte_of_zero_is_an_unmarked_request()
    {
        byte[] payload = [0x00, 0x01, (byte)'a', 0x00];

        var decoded = WireCodec.DecodeRequest(Opcode.Stat, payload);

        decoded.Should().Be(new StatRequest("a"));
    }

    [Fact]
    public void Flag_bits_this_peer_does_not_know_are_ignored()
    {
        byte[] payload = [0x00, 0x01, (byte)'a', 0xFE];

        var decoded = WireCodec.DecodeRequest(Opcode.Stat, payload);

        decoded.Should().Be(new StatRequest("a"), "later flags must not make this peer refuse a request");
    }

    [Fact]
    public void The_largest_GET_with_its_flags_byte_fits_the_request_limit()
    {
        var get = new GetRequest(new string('n', ProtocolLimits.MaxNameBytes), 0, 0, new string('v', ProtocolLimits.MaxVersionBytes), Forwarded: true);

        Frames.Request(get).Length.Should().Be(WireCodec.MaxRequestFrame);
    }
}
