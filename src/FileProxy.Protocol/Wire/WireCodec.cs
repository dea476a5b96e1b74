namespace FileProxy.Protocol.Wire;

/// <summary>
/// Encodes and decodes whole frames. Layouts (big-endian, str16 = u16 byte count + UTF-8):
/// <list type="bullet">
/// <item>GET <c>[str16 name][u64 offset][u64 length][str16 ifVersion]</c>, then <c>[u8 flags]</c> when not 0</item>
/// <item>STAT <c>[str16 name]</c>, then <c>[u8 flags]</c> when not 0; PURGE <c>[str16 name]</c>; STATS: empty;
///   AUTH <c>[str16 token]</c>; LIST <c>[str16 directory][str16 cursor][u16 limit]</c></item>
/// <item>every response <c>[u8 status][str16 message]</c>, and on Ok:
///   GET <c>[u64 size][str16 version][32 digest][u64 offset][u64 length][u8 source]</c> then length raw body bytes;
///   STAT <c>[u64 size][str16 version][32 digest][u8 source]</c>;
///   STATS <c>[u16 count]{[str16 key][u64 value]}</c>; PURGE, AUTH nothing;
///   LIST <c>[u16 count]{[u8 type][str16 name][u64 size][str16 version]}[str16 next cursor]</c>.</item>
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
            case ListRequest list:
                if (ListRequestBytes(System.Text.Encoding.UTF8.GetByteCount(list.Directory), System.Text.Encoding.UTF8.GetByteCount(list.Cursor))
                    is var bytes and > ProtocolLimits.MaxNameBytes)
                {
                    throw new ArgumentException($"directory and cursor together are {bytes} bytes; the limit is {ProtocolLimits.MaxNameBytes}", nameof(request));
                }
                writer.String16(list.Directory, ProtocolLimits.MaxNameBytes);
                writer.String16(list.Cursor, ProtocolLimits.MaxNameBytes);
                writer.U16(list.Limit);
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
            Opcode.List => ReadListRequest(ref reader),
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
                case Opcode.List:
                    WriteListing(ref writer, head.Listing ?? throw new ArgumentException("an Ok LIST response needs a listing", nameof(head)));
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
        var head = new ResponseHead(status, message) { OnErrorFrame = header.Opcode == Opcode.ErrorResponse };
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
                case Opcode.List:
                    head = head with { Listing = ReadListing(ref reader) };
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
        requestOpcode is Opcode.Get or Opcode.Stat or Opcode.Stats or Opcode.Purge or Opcode.Auth or Opcode.List
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
        foreach (var c in version) // not LINQ's Any: that boxes an enumerator on every GET
        {
            if (char.IsControl(c))
            {
                throw new ProtocolException($"{field} holds a control character");
            }
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

    /// <summary>The name the directory and cursor make together (<c>DIR/CURSOR</c>), in bytes: a listing's entries are
    /// names a GET could ask for, so a cursor (an entry's name) cannot make it longer than a name may be.</summary>
    private static int ListRequestBytes(int directory, int cursor) => directory > 0 && cursor > 0 ? directory + 1 + cursor : directory + cursor;

    private static ListRequest ReadListRequest(ref WireReader reader)
    {
        var directory = reader.String16(ProtocolLimits.MaxNameBytes, "directory");
        var cursor = reader.String16(ProtocolLimits.MaxNameBytes, "cursor");
        var bytes = ListRequestBytes(System.Text.Encoding.UTF8.GetByteCount(directory), System.Text.Encoding.UTF8.GetByteCount(cursor));
        if (bytes > ProtocolLimits.MaxNameBytes)
        {
            throw new ProtocolException($"directory and cursor together are {bytes} bytes; the limit is {ProtocolLimits.MaxNameBytes}");
        }
        if (cursor.Length > 0 && !SafeName.IsEntryName(cursor, out var error))
        {
            throw new ProtocolException($"cursor is not an entry name: {error}");
        }
        return new ListRequest(directory, cursor, reader.U16());
    }

    /// <summary>As many entries as fit in one frame (at most <see cref="ProtocolLimits.MaxListEntries"/>); when not all
    /// fit, the cursor says to go on after the last one sent.</summary>
    private static void WriteListing(ref WireWriter writer, DirectoryPage page)
    {
        var countAt = writer.Position;
        writer.U16(0);
        var count = 0;
        var next = page.Next;
        foreach (var entry in page.Entries)
        {
            var nameBytes = System.Text.Encoding.UTF8.GetByteCount(entry.Name);
            if (nameBytes > ProtocolLimits.MaxNameBytes)
            {
                throw new ArgumentException($"entry name is {nameBytes} bytes; the limit is {ProtocolLimits.MaxNameBytes}", nameof(page));
            }
            var entryBytes = 1 + 2 + nameBytes + 8 + 2 + Math.Min(ProtocolLimits.MaxVersionBytes, System.Text.Encoding.UTF8.GetByteCount(entry.Version));
            var last = count == page.Entries.Count - 1;
            var cursorBytes = 2 + (last ? System.Text.Encoding.UTF8.GetByteCount(page.Next) : nameBytes);
            if (count == ProtocolLimits.MaxListEntries || writer.Position + entryBytes + cursorBytes > ProtocolLimits.MaxFrameLength)
            {
                next = page.Entries[count - 1].Name;
                break;
            }
            writer.U8((byte)entry.Type);
            writer.String16(entry.Name, ProtocolLimits.MaxNameBytes);
            writer.U64((ulong)entry.Size);
            writer.String16(entry.Version, ProtocolLimits.MaxVersionBytes);
            count++;
        }
        if (count == 0 && page.More)
        {
            throw new ArgumentException("a listing page with more to come needs at least one entry", nameof(page));
        }
        writer.String16(next, ProtocolLimits.MaxNameBytes);
        writer.PatchU16(countAt, (ushort)count);
    }

    /// <summary>A page as a receiver may act on it: known types, entry names a GET could take (one segment each), in
    /// strictly increasing order, and a cursor that does not go back.</summary>
    private static DirectoryPage ReadListing(ref WireReader reader)
    {
        var count = reader.U16();
        if (count > reader.Remaining / 13) // each entry takes at least 1 + 2 + 8 + 2 bytes
        {
            throw new ProtocolException($"LIST response claims {count} entries in {reader.Remaining} bytes");
        }
        var entries = new ListEntry[count];
        for (var i = 0; i < count; i++)
        {
            var value = reader.U8();
            if (!Enum.IsDefined((EntryType)value))
            {
                throw new ProtocolException($"unknown entry type {value} in the response");
            }
            var name = reader.String16(ProtocolLimits.MaxNameBytes, "entry name");
            if (!SafeName.IsEntryName(name, out var error))
            {
                throw new ProtocolException($"entry name is not one a GET could take: {error}");
            }
            if (i > 0 && NameOrder.Instance.Compare(entries[i - 1].Name, name) >= 0)
            {
                throw new ProtocolException("entry names are not in increasing order");
            }
            entries[i] = new ListEntry(name, (EntryType)value, ReadLength(ref reader, "entry size"), ReadVersion(ref reader, "entry version tag"));
        }
        var next = reader.String16(ProtocolLimits.MaxNameBytes, "cursor");
        if (next.Length > 0 && (!SafeName.IsEntryName(next, out _) || (count > 0 && NameOrder.Instance.Compare(next, entries[^1].Name) < 0)))
        {
            throw new ProtocolException("the next cursor is not an entry name at or after the page's last");
        }
        return new DirectoryPage(entries, next);
    }
}
