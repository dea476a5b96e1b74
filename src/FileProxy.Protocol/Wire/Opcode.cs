namespace FileProxy.Protocol.Wire;

/// <summary>Frame types. A response echoes its request's opcode with the high bit set.
/// Values are part of the wire format: never renumber or reuse one.</summary>
public enum Opcode : byte
{
    Get = 0x01,
    Stat = 0x02,
    Stats = 0x03,
    Purge = 0x04,

    ResponseFlag = 0x80,
    GetResponse = Get | ResponseFlag,
    StatResponse = Stat | ResponseFlag,
    StatsResponse = Stats | ResponseFlag,
    PurgeResponse = Purge | ResponseFlag,

    /// <summary>Sent when the request's opcode is unknown or the frame could not be parsed.</summary>
    ErrorResponse = 0xFF,
}
