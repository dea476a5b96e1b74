using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Server;

/// <summary>
/// What a <see cref="ProtocolServer"/> serves: a directory on the origin, a cache on the proxy. Failures the
/// requester should hear about are returned as a non-Ok <see cref="ResponseHead"/>, not thrown.
/// </summary>
public interface IFileSource
{
    /// <summary>Short role name reported in STATS ("server", "proxy").</summary>
    string Role { get; }

    /// <summary>Resolves a GET. An Ok result carries a body of exactly <see cref="ResponseHead.Length"/> bytes.</summary>
    ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken);

    ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken);

    /// <summary>A STAT with its request, for sources that act on its flags (a proxy of a tier on the hop mark);
    /// the others answer it as <see cref="StatAsync(SafeName, CancellationToken)"/>.</summary>
    ValueTask<ResponseHead> StatAsync(SafeName name, StatRequest request, CancellationToken cancellationToken) =>
        StatAsync(name, cancellationToken);

    ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken);

    /// <summary>Lists one page of a directory (<paramref name="directory"/> null: the root), entries after
    /// <paramref name="cursor"/> (empty: from the first) in <see cref="NameOrder"/>, at most <paramref name="limit"/>
    /// of them. An Ok answer carries a <see cref="ResponseHead.Listing"/>. A source that cannot list answers
    /// NotSupported.</summary>
    ValueTask<ResponseHead> ListAsync(SafeName? directory, string cursor, int limit, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ResponseHead.Error(StatusCode.NotSupported, "this server does not list directories"));

    /// <summary>The source's own counters, appended to the server's in a STATS answer.</summary>
    IEnumerable<KeyValuePair<string, long>> Counters { get; }
}

/// <summary>A GET's answer: the head to send and, when Ok, the body to send after it.</summary>
public readonly record struct SourceResult(ResponseHead Head, IResponseBody? Body)
{
    public static SourceResult Error(StatusCode status, string message) => new(ResponseHead.Error(status, message), null);

    public static implicit operator SourceResult(ResponseHead head) => new(head, null);
}

/// <summary>A response body that knows how to send itself; disposed after sending, sent or not.</summary>
public interface IResponseBody : IAsyncDisposable
{
    long Length { get; }

    /// <summary>Copies the whole body into <paramref name="destination"/> when it is at least <see cref="Length"/>
    /// bytes and the bytes are at hand without waiting; returns false otherwise. Lets small bodies leave in the
    /// same packet as their head.</summary>
    bool TryCopyTo(Span<byte> destination);

    /// <summary>Sends the body; how it ended (and which side failed) is the result, not an exception.</summary>
    ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken);
}

/// <summary>Where a body goes: a connection's socket.</summary>
public interface IBodySink
{
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Sends a region of a file without copying it through user space where the platform allows.</summary>
    ValueTask SendFileAsync(FileStream file, long offset, long count, CancellationToken cancellationToken);
}

/// <summary>
/// The error of a <see cref="CopyResult.UpstreamReadFailed"/> outcome whose cause was logged once where it happened
/// (a fill shared by many responses): the connection cuts the response, the only way left to tell the peer, and
/// adds no log line of its own beyond the request's.
/// </summary>
public sealed class BodySourceFailedException : IOException
{
    public BodySourceFailedException() { }

    public BodySourceFailedException(string message) : base(message) { }

    public BodySourceFailedException(string message, Exception innerException) : base(message, innerException) { }
}
