namespace FileProxy.Protocol.Client;

/// <summary>The peer could not be reached, broke the protocol or went away mid-response.</summary>
public sealed class UpstreamException : Exception
{
    public UpstreamException() { }

    public UpstreamException(string message) : base(message) { }

    public UpstreamException(string message, Exception innerException) : base(message, innerException) { }

    public UpstreamException(string message, Wire.StatusCode status) : base(message) => Status = status;

    /// <summary>The status the peer refused with, when it answered at all (a refused token: Unauthorized).</summary>
    public Wire.StatusCode? Status { get; }
}
