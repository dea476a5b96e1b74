namespace FileProxy.Protocol.Wire;

/// <summary>Limits every peer enforces; see docs/PROTOCOL.md.</summary>
public static class ProtocolLimits
{
    /// <summary>Magic bytes "FP" that open every frame.</summary>
    public const ushort Magic = 0x4650;

    /// <summary>The protocol version this code speaks.</summary>
    public const byte Version = 1;

    /// <summary>Size of the fixed frame header: magic (2), version (1), opcode (1), payload length (4).</summary>
    public const int FrameHeaderLength = 8;

    /// <summary>Largest payload a frame may carry (bodies travel outside frames).</summary>
    public const int MaxFrameLength = 64 * 1024;

    /// <summary>Largest name, in UTF-8 bytes.</summary>
    public const int MaxNameBytes = 1024;

    /// <summary>Largest version tag, in ASCII bytes.</summary>
    public const int MaxVersionBytes = 128;

    /// <summary>Longest shared token (AUTH), in UTF-8 bytes.</summary>
    public const int MaxTokenBytes = 256;

    /// <summary>Largest error message, in UTF-8 bytes; longer messages are cut.</summary>
    public const int MaxMessageBytes = 4096;

    /// <summary>Most entries in one LIST answer; a request asking for 0 or for more gets this many (fewer when
    /// they do not fit in one frame).</summary>
    public const int MaxListEntries = 1000;

    /// <summary>Length value meaning "to the end of the file".</summary>
    public const ulong ToEnd = ulong.MaxValue;

    /// <summary>Time a peer has to complete a request frame once its first byte arrived.</summary>
    public static readonly TimeSpan DefaultHeaderTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Time an idle persistent connection is kept open between requests.</summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromSeconds(120);
}
