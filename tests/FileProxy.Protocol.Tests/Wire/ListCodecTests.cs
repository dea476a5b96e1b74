using System.Text;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

/// <summary>LIST (opcode 0x06): the documented layout, the page cut to one frame, and what a receiver refuses.</summary>
public sealed class ListCodecTests
{
    private static ResponseHead Page(IEnumerable<ListEntry> entries, string next = "") =>
        new(StatusCode.Ok, "") { Listing = new DirectoryPage([.. entries], next) };

    [Fact]
    public void LIST_request_has_the_documented_big_endian_layout()
    {
        var frame = Frames.Request(new ListRequest("docs", "a.txt", 100));

        frame.Should().Equal(
            0x46, 0x50, 0x01, 0x06, 0x00, 0x00, 0x00, 15,
            0x00, 0x04, (byte)'d', (byte)'o', (byte)'c', (byte)'s',
            0x00, 0x05, (byte)'a', (byte)'.', (byte)'t', (byte)'x', (byte)'t',
            0x00, 100);
    }

    [Fact]
    public void LIST_response_has_the_documented_layout_of_PROTOCOL_md()
    {
        // The worked example in docs/PROTOCOL.md, byte for byte.
        var head = Page([new("a.txt", EntryType.File, 5, "b1e960-5-18eb94cade4fc5b9-18eb94cade4fc5b9"), new("sub", EntryType.Directory, 0, "")]);

        var frame = Frames.Response(Opcode.List, head);

        Convert.ToHexStringLower(frame).Should().Be(
            "4650018600000053" + "00" + "0000" + "0002"
            + "01" + "0005" + Convert.ToHexStringLower("a.txt"u8) + "0000000000000005" + "002a" + Convert.ToHexStringLower("b1e960-5-18eb94cade4fc5b9-18eb94cade4fc5b9"u8)
            + "02" + "0003" + Convert.ToHexStringLower("sub"u8) + "0000000000000000" + "0000"
            + "0000");
    }

    [Fact]
    public void A_page_too_big_for_one_frame_is_cut_and_its_cursor_points_after_the_last_entry_sent()
    {
        var entries = Enumerable.Range(0, 900).Select(i => new ListEntry($"{i:D4}-{new string('n', 80)}", EntryType.File, i, new string('v', 60))).ToList();

        var frame = Frames.Response(Opcode.List, Page(entries));
        var decoded = Frames.DecodeResponse(Opcode.List, frame).Listing!;

        frame.Length.Should().BeLessThanOrEqualTo(WireCodec.MaxResponseFrame);
        decoded.Entries.Should().HaveCountLessThan(900).And.HaveCountGreaterThan(100);
        decoded.Entries.Should().Equal(entries.Take(decoded.Entries.Count));
        decoded.Next.Should().Be(decoded.Entries[^1].Name, "the next page starts after the last entry that fitted");
    }

    [Fact]
    public void A_page_is_cut_at_the_most_entries_one_answer_may_hold()
    {
        var entries = Enumerable.Range(0, ProtocolLimits.MaxListEntries + 5).Select(i => new ListEntry($"{i:D5}", EntryType.File, 0, "v")).ToList();

        var decoded = Frames.DecodeResponse(Opcode.List, Frames.Response(Opcode.List, Page(entries))).Listing!;

        decoded.Entries.Should().HaveCount(ProtocolLimits.MaxListEntries);
        decoded.More.Should().BeTrue();
    }

    [Fact]
    public void Entries_are_ordered_by_code_point_which_is_UTF8_byte_order()
    {
        string[] names = ["b", "a", "\uFF21", "\U0001F600", "ab", "B"];

        var sorted = names.Order(NameOrder.Instance).ToArray();

        sorted.Select(n => Convert.ToHexString(Encoding.UTF8.GetBytes(n))).Should().BeInAscendingOrder(StringComparer.Ordinal);
        sorted.Should().Equal("B", "a", "ab", "b", "\uFF21", "\U0001F600");
    }

    public static TheoryData<string, string> BadCursors => new()
    {
        { "a/b", "*cursor is not an entry name*no '/'*" },
        { "..", "*cursor is not an entry name*'..'*" },
        { "a\0b", "*cursor is not an entry name*NUL*" },
        { "/etc", "*cursor is not an entry name*relative*" },
    };

    [Theory]
    [MemberData(nameof(BadCursors))]
    public void LIST_request_with_a_cursor_that_is_no_entry_name_is_refused(string cursor, string message)
    {
        var payload = new PayloadBuilder().Str16("dir").Str16(cursor).U16(0).ToArray();

        var act = () => WireCodec.DecodeRequest(Opcode.List, payload);

        act.Should().Throw<ProtocolException>().WithMessage(message);
    }

    [Fact]
    public void LIST_request_whose_directory_and_cursor_make_a_name_over_1024_bytes_is_refused()
    {
        var payload = new PayloadBuilder().Str16(new string('d', 600)).Str16(new string('c', 500)).U16(0).ToArray();

        var act = () => WireCodec.DecodeRequest(Opcode.List, payload);

        act.Should().Throw<ProtocolException>().WithMessage("directory and cursor together are 1101 bytes; the limit is 1024");
        var encode = () => Frames.Request(new ListRequest(new string('d', 600), new string('c', 500)));
        encode.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void The_largest_LIST_request_fits_under_the_request_frame_limit_older_servers_enforce()
    {
        var frame = Frames.Request(new ListRequest(new string('d', 511), new string('c', 512), ushort.MaxValue));

        frame.Length.Should().BeLessThanOrEqualTo(WireCodec.MaxRequestFrame, "an older server reads it whole and answers 'unknown opcode'");
    }

    [Fact]
    public void LIST_request_missing_its_limit_is_refused()
    {
        var payload = new PayloadBuilder().Str16("dir").Str16("").ToArray();

        var act = () => WireCodec.DecodeRequest(Opcode.List, payload);

        act.Should().Throw<ProtocolException>().WithMessage("frame payload is shorter than its fields");
    }

    public static TheoryData<string, byte[], string> BadPages => new()
    {
        { "unknown entry type", Listing(b => b.U16(1).U8(3).Str16("a").U64(0).Str16("").Str16("")), "unknown entry type 3*" },
        { "entry name with '/'", Listing(b => b.U16(1).U8(1).Str16("a/b").U64(0).Str16("").Str16("")), "entry name is not one a GET could take*" },
        { "entry name '..'", Listing(b => b.U16(1).U8(2).Str16("..").U64(0).Str16("").Str16("")), "entry name is not one a GET could take*" },
        { "names out of order", Listing(b => b.U16(2).U8(1).Str16("b").U64(0).Str16("").U8(1).Str16("a").U64(0).Str16("").Str16("")), "entry names are not in increasing order" },
        { "the same name twice", Listing(b => b.U16(2).U8(1).Str16("a").U64(0).Str16("").U8(2).Str16("a").U64(0).Str16("").Str16("")), "entry names are not in increasing order" },
        { "a cursor before the last entry", Listing(b => b.U16(1).U8(1).Str16("b").U64(0).Str16("").Str16("a")), "the next cursor is not*" },
        { "a count past the payload", Listing(b => b.U16(60000).U8(1).Str16("a").U64(0).Str16("").Str16("")), "LIST response claims 60000 entries*" },
        { "a size over 2^63-1", Listing(b => b.U16(1).U8(1).Str16("a").U64(ulong.MaxValue).Str16("").Str16("")), "entry size * is out of range" },
        { "a version tag with a newline", Listing(b => b.U16(1).U8(1).Str16("a").U64(0).Str16("v\n").Str16("")), "entry version tag holds a control character" },
        { "no cursor", Listing(b => b.U16(1).U8(1).Str16("a").U64(0).Str16("")), "frame payload is shorter than its fields" },
    };

    [Theory]
    [MemberData(nameof(BadPages))]
    public void LIST_response_a_receiver_could_not_act_on_is_a_protocol_error(string label, byte[] payload, string message)
    {
        var act = () => WireCodec.DecodeResponse(Opcode.List, new FrameHeader(Opcode.ListResponse, payload.Length), payload);

        act.Should().Throw<ProtocolException>(label).WithMessage(message);
    }

    [Fact]
    public void An_older_peer_s_answer_on_the_error_opcode_is_marked_as_such()
    {
        // What a version-1 peer without LIST sends back (captured from a server built from the commit before LIST): 0xFF / BadRequest.
        var frame = Convert.FromHexString("465001ff00000016020013756e6b6e6f776e206f70636f64652030783036");

        var head = Frames.DecodeResponse(Opcode.List, frame);

        head.Status.Should().Be(StatusCode.BadRequest);
        head.Message.Should().Be("unknown opcode 0x06");
        head.OnErrorFrame.Should().BeTrue();
    }

    private static byte[] Listing(Action<PayloadBuilder> entries)
    {
        var builder = new PayloadBuilder().U8(0).Str16("");
        entries(builder);
        return builder.ToArray();
    }
}
