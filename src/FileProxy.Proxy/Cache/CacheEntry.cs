using FileProxy.Protocol;
using FileProxy.Protocol.Wire;

namespace FileProxy.Proxy.Cache;

/// <summary>A committed cache entry. Mutable fields are guarded by the cache's lock.</summary>
internal sealed class CacheEntry
{
    public CacheEntry(SafeName name, string key, FileMetadata file, string dataPath, long validatedAt)
    {
        Name = name;
        Key = key;
        File = file;
        DataPath = dataPath;
        ValidatedAt = validatedAt;
        LruNode = new LinkedListNode<CacheEntry>(this);
    }

    public SafeName Name { get; }

    public string Key { get; }

    public FileMetadata File { get; }

    public string DataPath { get; }

    /// <summary>When the origin last confirmed this version (<see cref="Environment.TickCount64"/> ms).</summary>
    public long ValidatedAt { get; set; }

    /// <summary>The last revalidation could not reach the origin: serve as stale until one succeeds.</summary>
    public bool Stale { get; set; }

    /// <summary>Responses currently reading this entry's file; such an entry is never evicted.</summary>
    public int Readers { get; set; }

    /// <summary>Dropped from the index; its data file goes once the last reader is done.</summary>
    public bool Removed { get; set; }

    /// <summary>The one revalidation in flight, shared by everyone who finds the entry due.</summary>
    public Task<Revalidation>? Revalidating { get; set; }

    public LinkedListNode<CacheEntry> LruNode { get; }
}

internal enum RevalidationOutcome
{
    Unchanged,
    Changed,
    Gone,
    Unreachable,
    Refused,
}

internal sealed record Revalidation(RevalidationOutcome Outcome, ResponseHead? Head = null, string? Reason = null);
