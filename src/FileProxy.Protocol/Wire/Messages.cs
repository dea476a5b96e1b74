namespace FileProxy.Protocol.Wire;

/// <summary>GET: <c>[str16 name][u64 offset][u64 length][str16 ifVersion]</c>, then <c>[u8 flags]</c> only when a flag is
/// set. Length <see cref="ProtocolLimits.ToEnd"/> means to the end of the file; an empty ifVersion accepts any version.
/// <paramref name="Forwarded"/> is the tier's hop mark (<see cref="RequestFlags.Forwarded"/>).</summary>
public sealed record GetRequest(string Name, ulong Offset = 0, ulong Length = ProtocolLimits.ToEnd, string IfVersion = "",
    bool Forwarded = false) : Request(Opcode.Get);

/// <summary>A decoded request frame.</summary>
public abstract record Request(Opcode Opcode);

/// <summary>STAT: <c>[str16 name]</c>, then <c>[u8 flags]</c> only when a flag is set (see <see cref="GetRequest"/>).</summary>
public sealed record StatRequest(string Name, bool Forwarded = false) : Request(Opcode.Stat);

/// <summary>Bits of the optional flags byte that ends a GET or STAT payload (docs/PROTOCOL.md, "Request flags").</summary>
public static class RequestFlags
{
    /// <summary>The hop mark: a proxy of a tier sent this request on behalf of its own client. The receiver answers
    /// it from its cache or the origin and never forwards it to another peer.</summary>
    public const byte Forwarded = 0x01;
}

/// <summary>STATS: empty payload.</summary>
public sealed record StatsRequest() : Request(Opcode.Stats);

/// <summary>PURGE: <c>[str16 name]</c>.</summary>
public sealed record PurgeRequest(string Name) : Request(Opcode.Purge);

/// <summary>AUTH: <c>[str16 token]</c>. The token is a secret: never logged.</summary>
public sealed record AuthRequest(string Token) : Request(Opcode.Auth)
{
    public override string ToString() => "AuthRequest { Token = (hidden) }";
}

/// <summary>LIST: <c>[str16 directory][str16 cursor][u16 limit]</c>. An empty directory is the root; an empty cursor
/// starts at the first entry, otherwise the listing goes on after the entry of that name (the previous page's
/// <see cref="DirectoryPage.Next"/>); limit 0 lets the server choose (at most <see cref="ProtocolLimits.MaxListEntries"/>).</summary>
public sealed record ListRequest(string Directory = "", string Cursor = "", ushort Limit = 0) : Request(Opcode.List);

/// <summary>What a LIST entry is. Values are part of the wire format.</summary>
public enum EntryType : byte
{
    File = 1,
    Directory = 2,
}

/// <summary>One entry of a directory: its name (one segment, no '/'), type, size in bytes and version tag (both as
/// GET and STAT would report them; 0 and empty for a directory).</summary>
public sealed record ListEntry(string Name, EntryType Type, long Size, string Version);

/// <summary>One page of a listing, in UTF-8 byte order of the names. <see cref="Next"/> is empty on the last page,
/// otherwise the cursor that asks for the page after this one (the name of this page's last entry).</summary>
public sealed record DirectoryPage(IReadOnlyList<ListEntry> Entries, string Next)
{
    public bool More => Next.Length > 0;

    /// <summary>A page of <paramref name="entries"/>; when <paramref name="more"/>, the next one starts after its last.</summary>
    public static DirectoryPage Of(IReadOnlyList<ListEntry> entries, bool more) =>
        new(entries, more && entries.Count > 0 ? entries[^1].Name : "");
}

/// <summary>Where a response's bytes came from, so clients and logs can tell hits from misses.</summary>
public enum ResponseSource : byte
{
    Origin = 0,
    CacheHit = 1,
    CacheMiss = 2,
    /// <summary>Served from another request's fill that was already running.</summary>
    CacheCoalesced = 3,
    /// <summary>Streamed from the upstream without being cached (larger than the cache).</summary>
    PassThrough = 4,
    /// <summary>A cached copy served while the upstream was unreachable.</summary>
    StaleHit = 5,
}

/// <summary>What a peer knows about one file: its size, version tag and content digest.</summary>
public sealed record FileMetadata(long Size, string Version, ContentDigest Digest);

/// <summary>One decoded response frame. For a GET with <see cref="StatusCode.Ok"/> status, exactly
/// <see cref="Length"/> body bytes follow the frame.</summary>
public sealed record ResponseHead(StatusCode Status, string Message)
{
    public FileMetadata? File { get; init; }
    public long Offset { get; init; }
    public long Length { get; init; }
    public ResponseSource Source { get; init; }
    public IReadOnlyList<KeyValuePair<string, long>> Counters { get; init; } = [];

    /// <summary>A LIST answer's page of entries.</summary>
    public DirectoryPage? Listing { get; init; }

    /// <summary>The answer came on the error opcode 0xFF: the peer answered a frame it could not take as the request
    /// sent (an older peer's answer to an opcode it does not know, a refusal as Busy).</summary>
    public bool OnErrorFrame { get; init; }

    public bool IsOk => Status == StatusCode.Ok;

    public static ResponseHead Error(StatusCode status, string message) => new(status, message);
}
