namespace FileProxy.Protocol.Client;

/// <summary>The peer could not be reached, broke the protocol or went away mid-response.</summary>
public sealed class UpstreamException : Exception
{
    public UpstreamException() { }

    public UpstreamException(string message) : base(message) { }

    public UpstreamException(string message, Exception innerException) : base(message, innerException) { }
}
