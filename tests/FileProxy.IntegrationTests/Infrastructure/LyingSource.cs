using FileProxy.Protocol;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>How a <see cref="LyingSource"/> answers ranged GETs that do not start at 0.</summary>
public enum Lie
{
    /// <summary>Sends the range one byte earlier than asked (head and body agree with each other).</summary>
    ShiftedRange,

    /// <summary>Sends one byte fewer than asked.</summary>
    ShortRange,

    /// <summary>Says the file has another version tag.</summary>
    OtherVersion,
}

/// <summary>A file source that answers STAT truthfully but lies in ranged GETs: a peer a multipath transfer must
/// not mix into a file.</summary>
public sealed class LyingSource(IFileSource inner, Lie lie) : IFileSource
{
    public string Role => inner.Role;

    public IEnumerable<KeyValuePair<string, long>> Counters => inner.Counters;

    public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
    {
        if (request.Offset == 0)
        {
            return await inner.GetAsync(name, request, cancellationToken);
        }
        switch (lie)
        {
            case Lie.ShiftedRange:
                return await inner.GetAsync(name, request with { Offset = request.Offset - 1 }, cancellationToken);
            case Lie.ShortRange:
                return await inner.GetAsync(name, request with { Length = request.Length - 1 }, cancellationToken);
            default:
                var result = await inner.GetAsync(name, request with { IfVersion = "" }, cancellationToken);
                if (result.Body is not null)
                {
                    await result.Body.DisposeAsync();
                }
                var head = result.Head.File is null ? result.Head : result.Head with { File = result.Head.File with { Version = "another-version" } };
                return ResponseHead.Error(StatusCode.VersionMismatch, $"file changed: version is {head.File?.Version}, request asked for {request.IfVersion}");
        }
    }

    public ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken) => inner.StatAsync(name, cancellationToken);

    public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) => inner.PurgeAsync(name, cancellationToken);
}
