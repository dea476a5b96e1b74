using FileProxy.Protocol.Wire;

namespace FileProxy.Client;

/// <summary>The client's exit codes (documented in the README).</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int InternalError = 1;
    public const int UsageError = 2;
    public const int NotFound = 3;
    public const int Refused = 4;
    public const int NetworkError = 5;
    public const int IntegrityError = 6;
    public const int LocalIoError = 7;

    public static int For(StatusCode status) => status switch
    {
        StatusCode.Ok => Success,
        StatusCode.NotFound => NotFound,
        StatusCode.BadRequest or StatusCode.Forbidden or StatusCode.RangeNotSatisfiable or StatusCode.VersionMismatch
            or StatusCode.NotSupported or StatusCode.UnsupportedVersion or StatusCode.Unauthorized => Refused,
        StatusCode.UpstreamIntegrityError => IntegrityError,
        _ => NetworkError,
    };
}
