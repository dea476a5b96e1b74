namespace FileProxy.Protocol.Wire;

/// <summary>The first byte of every response payload. Values are part of the wire format.</summary>
public enum StatusCode : byte
{
    Ok = 0,
    NotFound = 1,
    BadRequest = 2,
    Forbidden = 3,
    UpstreamUnavailable = 4,
    RangeNotSatisfiable = 5,
    Busy = 6,
    InternalError = 7,
    /// <summary>The request's if-version did not match the file's current version.</summary>
    VersionMismatch = 8,
    /// <summary>The frame's protocol version is not one this peer speaks.</summary>
    UnsupportedVersion = 9,
    /// <summary>The upstream sent bytes that failed the length or digest check.</summary>
    UpstreamIntegrityError = 10,
    /// <summary>The request is well formed but this kind of peer does not offer it (PURGE sent to an origin).</summary>
    NotSupported = 11,
    /// <summary>The server requires a shared token on this connection and none, or a wrong one, was presented.</summary>
    Unauthorized = 12,
}
