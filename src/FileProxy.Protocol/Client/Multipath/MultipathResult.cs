using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Client.Multipath;

/// <summary>What one subflow did in a transfer.</summary>
/// <param name="Index">Subflow number: the position of its address in the list given.</param>
/// <param name="Address">HOST:PORT.</param>
/// <param name="Bytes">Bytes of the file that came over this subflow (duplicates thrown away do not count).</param>
/// <param name="Failure">Why it stopped early, or null.</param>
public sealed record SubflowReport(int Index, string Address, long Bytes, string? Failure);

/// <summary>The outcome of a multipath transfer. <see cref="Digest"/> is the BLAKE3 of the bytes written; the
/// caller compares it with the announced one.</summary>
public sealed record MultipathResult(long Bytes, ContentDigest Digest, TimeSpan Elapsed, IReadOnlyList<SubflowReport> Subflows,
    IReadOnlyList<AmpDecision> Decisions)
{
    /// <summary>Where the first chunk came from (origin, cache miss, cache hit…); null for an empty file.</summary>
    public ResponseSource? Source { get; init; }

    /// <summary>Subflows that carried at least one chunk that went into the file.</summary>
    public int SubflowsCarrying => Subflows.Count(s => s.Bytes > 0);
}
