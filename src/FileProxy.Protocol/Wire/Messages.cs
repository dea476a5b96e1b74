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

    public bool IsOk => Status == StatusCode.Ok;

    public static ResponseHead Error(StatusCode status, string message) => new(status, message);
}
