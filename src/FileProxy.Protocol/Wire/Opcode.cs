namespace FileProxy.Protocol.Wire;

/// <summary>Frame types. A response echoes its request's opcode with the high bit set.
/// Values are part of the wire format: never renumber or reuse one.</summary>
public enum Opcode : byte
{
    Get = 0x01,
    Stat = 0x02,
    Stats = 0x03,
    Purge = 0x04,
    /// <summary>Presents the connection's shared token (servers started with a token file require it first).</summary>
    Auth = 0x05,
    /// <summary>Lists one page of a directory's entries (name, type, size, version tag).</summary>
    List = 0x06,

    ResponseFlag = 0x80,
    GetResponse = Get | ResponseFlag,
    StatResponse = Stat | ResponseFlag,
    StatsResponse = Stats | ResponseFlag,
    PurgeResponse = Purge | ResponseFlag,
    AuthResponse = Auth | ResponseFlag,
    ListResponse = List | ResponseFlag,

    /// <summary>Answers what has no request opcode to echo: an unknown opcode, a malformed frame header, a header
    /// timeout, or a connection refused as Busy. A known opcode with a bad payload gets <c>opcode | 0x80</c>.</summary>
    ErrorResponse = 0xFF,
}
