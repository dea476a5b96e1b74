namespace FileProxy.Protocol.Wire;

/// <summary>
/// Encodes and decodes whole frames. Layouts (big-endian, str16 = u16 byte count + UTF-8):
/// <list type="bullet">
/// <item>GET <c>[str16 name][u64 offset][u64 length][str16 ifVersion]</c>, then <c>[u8 flags]</c> when not 0</item>
/// <item>STAT <c>[str16 name]</c>, then <c>[u8 flags]</c> when not 0; PURGE <c>[str16 name]</c>; STATS: empty;
///   AUTH <c>[str16 token]</c></item>
/// <item>every response <c>[u8 status][str16 message]</c>, and on Ok:
///   GET <c>[u64 size][str16 version][32 digest][u64 offset][u64 length][u8 source]</c> then length raw body bytes;
///   STAT <c>[u64 size][str16 version][32 digest][u8 source]</c>;
///   STATS <c>[u16 count]{[str16 key][u64 value]}</c>; PURGE, AUTH nothing.</item>
/// </list>
/// See docs/PROTOCOL.md.
/// </summary>
public static class WireCodec
{
    /// <summary>Room for any request frame (the largest is a GET with its flags byte).</summary>
    public const int MaxRequestFrame = ProtocolLimits.FrameHeaderLength + 2 + ProtocolLimits.MaxNameBytes + 16 + 2 + ProtocolLimits.MaxVersionBytes + 1;

    /// <summary>Room for any response frame.</summary>
    public const int MaxResponseFrame = ProtocolLimits.FrameHeaderLength + ProtocolLimits.MaxFrameLength;

    private const int MaxCounterKeyBytes = 64;

    public static int EncodeRequest(Request request, Span<byte> destination)
    {
        var writer = new WireWriter(destination[ProtocolLimits.FrameHeaderLength..]);
        switch (request)
        {
            case GetRequest get:
                WriteName(ref writer, get.Name);
                writer.U64(get.Offset);
                writer.U64(get.Length);
                if (System.Text.Encoding.UTF8.GetByteCount(get.IfVersion) > ProtocolLimits.MaxVersionBytes)
                {
                    throw new ArgumentException($"if-version is longer than {ProtocolLimits.MaxVersionBytes} bytes", nameof(request));
                }
                writer.String16(get.IfVersion, ProtocolLimits.MaxVersionBytes);
                WriteFlags(ref writer, get.Forwarded);
                break;
            case StatRequest stat:
                WriteName(ref writer, stat.Name);
                WriteFlags(ref writer, stat.Forwarded);
                break;
            case PurgeRequest purge:
                WriteName(ref writer, purge.Name);
                break;
            case StatsRequest:
                break;
            case AuthRequest auth:
                if (System.Text.Encoding.UTF8.GetByteCount(auth.Token) > ProtocolLimits.MaxTokenBytes)
                {
                    throw new ArgumentException($"token is longer than {ProtocolLimits.MaxTokenBytes} bytes", nameof(request));
                }
                writer.String16(auth.Token, ProtocolLimits.MaxTokenBytes);
                break;
            default:
                throw new ArgumentException($"unknown request {request.GetType().Name}", nameof(request));
        }
        new FrameHeader(request.Opcode, writer.Position).Write(destination);
        return ProtocolLimits.FrameHeaderLength + writer.Position;
    }

    /// <summary>Decodes a request payload. Throws <see cref="ProtocolException"/> when the payload does not match
    /// its opcode; the frame itself was consumed, so the connection can answer and go on.</summary>
    public static Request DecodeRequest(Opcode opcode, ReadOnlySpan<byte> payload)
    {
        var reader = new WireReader(payload);
        Request request = opcode switch
        {
            Opcode.Get => new GetRequest(ReadName(ref reader), reader.U64(), reader.U64(), ReadVersion(ref reader, "if-version"),
                Forwarded: (ReadFlags(ref reader) & RequestFlags.Forwarded) != 0),
            Opcode.Stat => new StatRequest(ReadName(ref reader), Forwarded: (ReadFlags(ref reader) & RequestFlags.Forwarded) != 0),
            Opcode.Stats => new StatsRequest(),
            Opcode.Purge => new PurgeRequest(ReadName(ref reader)),
            Opcode.Auth => new AuthRequest(reader.String16(ProtocolLimits.MaxTokenBytes, "token")),
            _ => throw new ProtocolException($"unknown opcode 0x{(byte)opcode:x2}"),
        };
        reader.End();
        return request;
    }

    public static int EncodeResponse(Opcode requestOpcode, ResponseHead head, Span<byte> destination)
    {
        var opcode = head.Status == StatusCode.Ok ? requestOpcode | Opcode.ResponseFlag : ErrorOpcodeFor(requestOpcode);
        var writer = new WireWriter(destination[ProtocolLimits.FrameHeaderLength..]);
        writer.U8((byte)head.Status);
        writer.String16(head.Message, ProtocolLimits.MaxMessageBytes);
        if (head.Status == StatusCode.Ok)
        {
            switch (requestOpcode)
            {
                case Opcode.Get:
                    WriteFile(ref writer, Required(head.File));
                    writer.U64((ulong)head.Offset);
                    writer.U64((ulong)head.Length);
                    writer.U8((byte)head.Source);
                    break;
                case Opcode.Stat:
                    WriteFile(ref writer, Required(head.File));
                    writer.U8((byte)head.Source);
                    break;
                case Opcode.Stats:
                    WriteCounters(ref writer, head.Counters);
                    break;
                case Opcode.Purge or Opcode.Auth:
                    break;
                default:
                    throw new ArgumentException($"no Ok response for opcode {requestOpcode}", nameof(requestOpcode));
            }
        }
        new FrameHeader(opcode, writer.Position).Write(destination);
        return ProtocolLimits.FrameHeaderLength + writer.Position;
    }

    public static ResponseHead DecodeResponse(Opcode requestOpcode, FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.Opcode != (requestOpcode | Opcode.ResponseFlag) && header.Opcode != Opcode.ErrorResponse)
        {
            throw new ProtocolException($"expected a response to {requestOpcode}, got opcode 0x{(byte)header.Opcode:x2}");
        }
        var reader = new WireReader(payload);
        var status = ReadStatus(ref reader);
        var message = reader.String16(ProtocolLimits.MaxMessageBytes, "message");
        var head = new ResponseHead(status, message);
        if (status == StatusCode.Ok && header.Opcode != Opcode.ErrorResponse)
        {
            switch (requestOpcode)
            {
                case Opcode.Get:
                    var file = ReadFile(ref reader);
                    var offset = ReadLength(ref reader, "offset");
                    var length = ReadLength(ref reader, "length");
                    head = head with { File = file, Offset = offset, Length = length, Source = ReadSource(ref reader) };
                    if (offset > file.Size || length > file.Size - offset)
                    {
                        throw new ProtocolException($"response range {offset}+{length} exceeds file size {file.Size}");
                    }
                    break;
                case Opcode.Stat:
                    head = head with { File = ReadFile(ref reader), Source = ReadSource(ref reader) };
                    break;
                case Opcode.Stats:
                    head = head with { Counters = ReadCounters(ref reader) };
                    break;
            }
        }
        else if (status == StatusCode.Ok)
        {
            throw new ProtocolException("error frame with Ok status");
        }
        reader.End();
        return head;
    }

    private static Opcode ErrorOpcodeFor(Opcode requestOpcode) =>
        requestOpcode is Opcode.Get or Opcode.Stat or Opcode.Stats or Opcode.Purge or Opcode.Auth
            ? requestOpcode | Opcode.ResponseFlag
            : Opcode.ErrorResponse;

    private static FileMetadata Required(FileMetadata? file) =>
        file ?? throw new ArgumentException("an Ok response needs file metadata");

    private static void WriteName(ref WireWriter writer, string name)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(name) > ProtocolLimits.MaxNameBytes)
        {
            throw new ArgumentException($"name is longer than {ProtocolLimits.MaxNameBytes} UTF-8 bytes", nameof(name));
        }
        writer.String16(name, ProtocolLimits.MaxNameBytes);
    }

    /// <summary>The flags byte is sent only when a flag is set, so a request without one is byte for byte what peers
    /// before it sent; and only those peers refuse it (trailing bytes).</summary>
    private static void WriteFlags(ref WireWriter writer, bool forwarded)
    {
        if (forwarded)
        {
            writer.U8(RequestFlags.Forwarded);
        }
    }

    /// <summary>The optional flags byte at the end of a GET or STAT: 0 when absent. Bits this peer does not know are
    /// ignored, so later flags can be added without a new protocol version.</summary>
    private static byte ReadFlags(ref WireReader reader) => reader.Remaining > 0 ? reader.U8() : (byte)0;

    private static string ReadName(ref WireReader reader) => reader.String16(ProtocolLimits.MaxNameBytes, "name");

    private static void WriteFile(ref WireWriter writer, FileMetadata file)
    {
        writer.U64((ulong)file.Size);
        writer.String16(file.Version, ProtocolLimits.MaxVersionBytes);
        writer.Bytes(file.Digest.Bytes);
    }

    private static FileMetadata ReadFile(ref WireReader reader)
    {
        var size = ReadLength(ref reader, "size");
        var version = ReadVersion(ref reader, "version tag");
        var digest = new ContentDigest(reader.Bytes(ContentDigest.Length));
        return new FileMetadata(size, version, digest);
    }

    /// <summary>A version tag holds no control character (PROTOCOL.md): a newline in one would reach a proxy's
    /// .meta file, one line per field, as it came.</summary>
    private static string ReadVersion(ref WireReader reader, string field)
    {
        var version = reader.String16(ProtocolLimits.MaxVersionBytes, field);
        if (version.Any(char.IsControl))
        {
            throw new ProtocolException($"{field} holds a control character");
        }
        return version;
    }

    /// <summary>A status this peer does not know cannot be acted on (is it a failure? which?): a protocol error,
    /// never a value cast blindly into the enum.</summary>
    private static StatusCode ReadStatus(ref WireReader reader)
    {
        var value = reader.U8();
        return Enum.IsDefined((StatusCode)value)
            ? (StatusCode)value
            : throw new ProtocolException($"unknown status code {value} in the response");
    }

    private static ResponseSource ReadSource(ref WireReader reader)
    {
        var value = reader.U8();
        return Enum.IsDefined((ResponseSource)value)
            ? (ResponseSource)value
            : throw new ProtocolException($"unknown response source {value} in the response");
    }

    private static long ReadLength(ref WireReader reader, string field)
    {
        var value = reader.U64();
        if (value > long.MaxValue)
        {
            throw new ProtocolException($"{field} {value} is out of range");
        }
        return (long)value;
    }

    private static void WriteCounters(ref WireWriter writer, IReadOnlyList<KeyValuePair<string, long>> counters)
    {
        var room = ProtocolLimits.MaxFrameLength - writer.Position - 2;
        var count = 0;
        foreach (var (key, _) in counters)
        {
            room -= 2 + Math.Min(MaxCounterKeyBytes, System.Text.Encoding.UTF8.GetByteCount(key)) + 8;
            if (room < 0)
            {
                break;
            }
            count++;
        }
        writer.U16((ushort)count);
        for (var i = 0; i < count; i++)
        {
            writer.String16(counters[i].Key, MaxCounterKeyBytes);
            writer.U64((ulong)counters[i].Value);
        }
    }

    private static KeyValuePair<string, long>[] ReadCounters(ref WireReader reader)
    {
        var count = reader.U16();
        if (count > reader.Remaining / 10) // each counter takes at least 2 + 8 bytes
        {
            throw new ProtocolException($"STATS response claims {count} counters in {reader.Remaining} bytes");
        }
        var counters = new KeyValuePair<string, long>[count];
        for (var i = 0; i < count; i++)
        {
            counters[i] = new(reader.String16(MaxCounterKeyBytes, "counter name"), (long)reader.U64());
        }
        return counters;
    }
}
