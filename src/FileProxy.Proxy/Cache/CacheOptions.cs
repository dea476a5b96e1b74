namespace FileProxy.Proxy.Cache;

public sealed record CacheOptions
{
    public required string Directory { get; init; }

    /// <summary>Most bytes of file data kept; least recently used entries go first.</summary>
    public long MaxBytes { get; init; } = long.MaxValue;

    /// <summary>How long a cached file is served without asking the origin whether it changed.</summary>
    public TimeSpan RevalidateAfter { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Serve the cached copy (with a warning) when the origin cannot be asked.</summary>
    public bool ServeStaleOnError { get; init; } = true;

    /// <summary>Let clients remove entries with PURGE.</summary>
    public bool AllowPurge { get; init; }

    /// <summary>Upstream connections busy at once for requests (fills, pass-through relays, revalidations, STATs);
    /// more wait their turn, holding no file, buffer or connection.</summary>
    public int MaxConcurrentFills { get; init; } = 64;

    /// <summary>fsync each entry before it takes its final name, so a power cut cannot leave a short entry.</summary>
    public bool Fsync { get; init; } = true;

    /// <summary>Fetch misses over several addresses of the origin at once (null: one connection).</summary>
    public UpstreamMultipath? Multipath { get; init; }

    /// <summary>Take part in a tier of proxies (null: fetch every miss from the origin).</summary>
    public Tier.TierOptions? Tier { get; init; }
}
