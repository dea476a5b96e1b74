using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Hardening;

/// <summary>
/// The hostile-input table: each row the raw bytes a peer sends, the answer expected, and whether the connection
/// goes on (a bad payload: the frame was read whole, so a STAT sent after it in the same write is answered) or
/// closes (a bad header or a truncated frame: the stream position is lost). After every row, a normal request on a
/// new connection is served. Rows run against the origin and the proxy.
/// </summary>
public sealed class HostileInputTests(ITestOutputHelper output)
{
    private static readonly byte[] Content = Fetch.RandomBytes(1000, seed: 8);

    /// <summary>What a row expects: the answer's opcode and status (none: closed without an answer) and whether
    /// the connection serves the next request.</summary>
    public sealed record Expected(Opcode? Opcode, StatusCode? Status, bool GoesOn, long BodyBytes = 0);

    private static readonly Dictionary<string, (byte[] Bytes, Expected Expected)> Rows = new(StringComparer.Ordinal)
    {
        // The frame header: the position in the stream is lost, so an answer and then the connection closes.
        ["wrong magic (an HTTP request)"] = ("GET /a.bin HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), Closes(StatusCode.BadRequest)),
        ["wrong magic, one byte off"] = ([0x46, 0x51, 1, 1, 0, 0, 0, 0], Closes(StatusCode.BadRequest)),
        ["wrong version 2"] = (Header(Opcode.Get, 0, version: 2), Closes(StatusCode.UnsupportedVersion)),
        ["wrong version 0"] = (Header(Opcode.Get, 0, version: 0), Closes(StatusCode.UnsupportedVersion)),
        ["length 2^32-1"] = (Header(Opcode.Get, uint.MaxValue), Closes(StatusCode.BadRequest)),
        ["length 2^31"] = (Header(Opcode.Get, 1u << 31), Closes(StatusCode.BadRequest)),
        ["length over the protocol's 64 KiB"] = (Header(Opcode.Get, ProtocolLimits.MaxFrameLength + 1), Closes(StatusCode.BadRequest)),
        ["length under 64 KiB but over any request"] =
            (Header(Opcode.Get, (uint)(WireCodec.MaxRequestFrame - ProtocolLimits.FrameHeaderLength + 1)), Closes(StatusCode.BadRequest)),

        // Truncated frames, then the peer half-closes: nothing to answer.
        ["1 byte"] = ([0x46], Silent()),
        ["truncated header (7 of 8 bytes)"] = (Header(Opcode.Get, 10)[..7], Silent()),
        ["truncated payload (5 of 20 bytes)"] = ([.. Header(Opcode.Get, 20), 0, 5, 0x61, 0x2e, 0x62], Silent()),
        ["header announcing 60,000 bytes, none sent"] = (Header(Opcode.Stat, 60_000), Closes(StatusCode.BadRequest)),

        // Opcodes: the frame was read whole, so the connection goes on.
        ["unknown opcode 0x42"] = (Header((Opcode)0x42, 0), GoesOn(Opcode.ErrorResponse, StatusCode.BadRequest)),
        ["unknown opcode 0x00 with a payload"] = (Frame((Opcode)0x00, [1, 2, 3]), GoesOn(Opcode.ErrorResponse, StatusCode.BadRequest)),
        ["a response opcode sent as a request"] = (Frame(Opcode.GetResponse, [0, 0, 0]), GoesOn(Opcode.ErrorResponse, StatusCode.BadRequest)),
        ["the error opcode 0xFF"] = (Frame(Opcode.ErrorResponse, [2, 0, 0]), GoesOn(Opcode.ErrorResponse, StatusCode.BadRequest)),

        // Payloads.
        ["zero-length GET"] = (Header(Opcode.Get, 0), GoesOn(Opcode.GetResponse, StatusCode.BadRequest)),
        ["zero-length STAT"] = (Header(Opcode.Stat, 0), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["STATS with a trailing byte"] = (Frame(Opcode.Stats, [0]), GoesOn(Opcode.StatsResponse, StatusCode.BadRequest)),
        ["GET with a byte after its flags byte"] = (Frame(Opcode.Get, [.. Request(new GetRequest("a.bin"))[ProtocolLimits.FrameHeaderLength..], 0, 0]), GoesOn(Opcode.GetResponse, StatusCode.BadRequest)),
        ["name length 65535 in a short payload"] = (Frame(Opcode.Stat, [0xFF, 0xFF, 0x61]), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["name length 1025 (over the limit)"] = (Frame(Opcode.Stat, [.. U16(1025), .. new byte[1025]]), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["name length past the payload"] = (Frame(Opcode.Stat, [0, 100, 0x61]), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["name with NUL"] = (Frame(Opcode.Stat, Str16("a.bin\0.txt")), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["name with newline and ESC"] = (Frame(Opcode.Stat, Str16("a\n\u001b[31mb")), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["name not UTF-8"] = (Frame(Opcode.Stat, [0, 3, 0xC3, 0x28, 0x61]), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["name ../etc/passwd"] = (Frame(Opcode.Stat, Str16("../etc/passwd")), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["name /etc/passwd"] = (Frame(Opcode.Stat, Str16("/etc/passwd")), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["empty name"] = (Frame(Opcode.Stat, Str16("")), GoesOn(Opcode.StatResponse, StatusCode.BadRequest)),
        ["if-version of 129 bytes"] = (Frame(Opcode.Get, [.. Str16("a.bin"), .. new byte[16], .. U16(129), .. Enumerable.Repeat((byte)'v', 129)]),
            GoesOn(Opcode.GetResponse, StatusCode.BadRequest)),
        ["GET missing its if-version"] = (Frame(Opcode.Get, [.. Str16("a.bin"), .. new byte[16]]), GoesOn(Opcode.GetResponse, StatusCode.BadRequest)),

        // LIST: a bad cursor or directory is a bad payload, answered on 0x86; an oversized frame loses the stream.
        ["LIST over the request size limit"] =
            (Header(Opcode.List, (uint)(WireCodec.MaxRequestFrame - ProtocolLimits.FrameHeaderLength + 1)), Closes(StatusCode.BadRequest)),
        ["LIST whose directory and cursor pass 1024 bytes"] = (Frame(Opcode.List, [.. Str16(new string('d', 600)), .. Str16(new string('c', 500)), 0, 0]),
            GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST with a cursor holding '/'"] = (Frame(Opcode.List, [.. Str16(""), .. Str16("dir/a.bin"), 0, 0]), GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST with the cursor '..'"] = (Frame(Opcode.List, [.. Str16(""), .. Str16(".."), 0, 0]), GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST with a cursor not UTF-8"] = (Frame(Opcode.List, [.. Str16(""), 0, 2, 0xC3, 0x28, 0, 0]), GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST missing its limit"] = (Frame(Opcode.List, [.. Str16(""), .. Str16("")]), GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST with a trailing byte"] = (Frame(Opcode.List, [.. Str16(""), .. Str16(""), 0, 0, 0]), GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST of ../etc"] = (Request(new ListRequest("../etc")), GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST of a directory with NUL"] = (Frame(Opcode.List, [.. Str16("dir\0"), .. Str16(""), 0, 0]), GoesOn(Opcode.ListResponse, StatusCode.BadRequest)),
        ["LIST of a file"] = (Request(new ListRequest("a.bin")), GoesOn(Opcode.ListResponse, StatusCode.NotFound)),
        ["LIST asking for 65535 entries"] = (Request(new ListRequest("", "", ushort.MaxValue)), GoesOn(Opcode.ListResponse, StatusCode.Ok)),

        // Ranges.
        ["offset 2^64-1"] = (Request(new GetRequest("a.bin", ulong.MaxValue, 1)), GoesOn(Opcode.GetResponse, StatusCode.RangeNotSatisfiable)),
        ["offset 2^63"] = (Request(new GetRequest("a.bin", 1UL << 63)), GoesOn(Opcode.GetResponse, StatusCode.RangeNotSatisfiable)),
        ["offset one past the end"] = (Request(new GetRequest("a.bin", 1001)), GoesOn(Opcode.GetResponse, StatusCode.RangeNotSatisfiable)),
        ["offset + length overflows 2^64"] = (Request(new GetRequest("a.bin", 10, ulong.MaxValue - 5)), GoesOn(Opcode.GetResponse, StatusCode.Ok, 990)),
        ["length 2^63 from offset 0"] = (Request(new GetRequest("a.bin", 0, 1UL << 63)), GoesOn(Opcode.GetResponse, StatusCode.Ok, 1000)),

        // Requests a server refuses by what they ask for.
        ["a file that does not exist"] = (Request(new StatRequest("missing.bin")), GoesOn(Opcode.StatResponse, StatusCode.NotFound)),
        ["a directory"] = (Request(new StatRequest("dir")), GoesOn(Opcode.StatResponse, StatusCode.NotFound)),
        ["if-version that does not match"] = (Request(new GetRequest("a.bin", IfVersion: "not-the-version")), GoesOn(Opcode.GetResponse, StatusCode.VersionMismatch)),
    };

    public static TheoryData<string, Peer> Cases()
    {
        var cases = new TheoryData<string, Peer>();
        foreach (var label in Rows.Keys)
        {
            cases.Add(label, Peer.Origin);
            cases.Add(label, Peer.Proxy);
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_hostile_input_gets_its_answer_and_a_normal_request_is_served_afterwards(string label, Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("a.bin", Content);
        Directory.CreateDirectory(cluster.Root.Combine("dir"));
        var (bytes, expected) = Rows[label];
        var port = cluster.PortOf(peer);

        await using (var raw = await RawConnection.ConnectAsync(port, deadline.Token))
        {
            // A row whose connection goes on is followed by a STAT in the same write, which must be answered.
            await raw.SendAsync(expected.GoesOn ? [.. bytes, .. Request(new StatRequest("a.bin"))] : bytes, deadline.Token);
            raw.ShutdownSend();
            if (expected.Status is { } status)
            {
                var requestOpcode = expected.Opcode is Opcode.ErrorResponse or null ? Opcode.Get : expected.Opcode.Value & ~Opcode.ResponseFlag;
                var (header, head) = await raw.ReadResponseAsync(requestOpcode, deadline.Token);
                output.WriteLine($"{label}: {header.Opcode} {head.Status} \"{head.Message}\"");
                header.Opcode.Should().Be(expected.Opcode);
                head.Status.Should().Be(status, head.Message);
                head.Message.Should().NotContain("   at ", "no stack trace reaches a peer");
                if (head.IsOk)
                {
                    head.Length.Should().Be(expected.BodyBytes);
                    (await raw.ReadBytesAsync((int)head.Length, deadline.Token)).Should().Equal(Content[(int)head.Offset..(int)(head.Offset + head.Length)]);
                }
            }
            if (expected.GoesOn)
            {
                var (_, stat) = await raw.ReadResponseAsync(Opcode.Stat, deadline.Token);
                stat.Status.Should().Be(StatusCode.Ok, "the connection goes on after a frame read whole");
            }
            (await raw.WaitForCloseAsync(deadline.Token)).Should().BeTrue("nothing more is answered");
        }

        await using var client = await cluster.ConnectAsync(peer, deadline.Token);
        var next = await Fetch.GetAsync(client, "a.bin", deadline.Token);
        next.Head.Status.Should().Be(StatusCode.Ok);
        next.Body.Should().Equal(Content);
    }

    [Fact]
    public void The_table_has_at_least_thirty_rows() => Rows.Count.Should().BeGreaterThanOrEqualTo(30);

    private static Expected Closes(StatusCode status) => new(Opcode.ErrorResponse, status, GoesOn: false);

    private static Expected Silent() => new(null, null, GoesOn: false);

    private static Expected GoesOn(Opcode opcode, StatusCode status, long bodyBytes = 0) => new(opcode, status, GoesOn: true, bodyBytes);

    private static byte[] Header(Opcode opcode, uint payloadLength, byte version = ProtocolLimits.Version) =>
        RawConnection.Header(opcode, payloadLength, version);

    private static byte[] Header(Opcode opcode, int payloadLength) => Header(opcode, (uint)payloadLength);

    private static byte[] Frame(Opcode opcode, byte[] payload) => [.. Header(opcode, payload.Length), .. payload];

    private static byte[] Request(Request request) => RawConnection.Frame(request);

    private static byte[] U16(int value)
    {
        var bytes = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, (ushort)value);
        return bytes;
    }

    private static byte[] Str16(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        return [.. U16(bytes.Length), .. bytes];
    }
}
