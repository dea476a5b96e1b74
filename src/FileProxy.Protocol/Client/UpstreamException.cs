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

    /// <summary>The peer broke the protocol or failed the TLS check: trying again would meet the same peer doing
    /// the same (<see cref="RetryPolicy.IsTransient(UpstreamException)"/>). False for failures that may pass: no
    /// connection, a connection cut, a timeout.</summary>
    public bool Permanent { get; init; }
}
