namespace FileProxy.Protocol.Wire;

/// <summary>The peer broke the wire format. From a frame header the stream position is lost and the connection
/// closes; from a payload (the frame was read whole) the request is answered and the connection goes on.</summary>
public sealed class ProtocolException : Exception
{
    public ProtocolException(StatusCode status, string message) : base(message) => Status = status;

    public ProtocolException() : this(StatusCode.BadRequest, "protocol error") { }

    public ProtocolException(string message) : this(StatusCode.BadRequest, message) { }

    public ProtocolException(string message, Exception innerException) : base(message, innerException) =>
        Status = StatusCode.BadRequest;

    /// <summary>The status to answer with, when an answer is still possible.</summary>
    public StatusCode Status { get; }
}
