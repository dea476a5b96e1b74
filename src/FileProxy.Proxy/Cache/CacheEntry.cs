using FileProxy.Protocol;
using FileProxy.Protocol.Wire;

namespace FileProxy.Proxy.Cache;

/// <summary>
/// A committed cache entry. Mutable fields are guarded by the cache's lock. An entry found on disk at start-up
/// knows only its key, data file and size; its name and metadata are read from its <c>.meta</c> file on first
/// use (<see cref="IsLoaded"/>), which keeps start-up to a directory scan.
/// </summary>
internal sealed class CacheEntry
{
    public CacheEntry(string key, string dataPath, long size, long validatedAt)
    {
        Key = key;
        DataPath = dataPath;
        Size = size;
        ValidatedAt = validatedAt;
        LruNode = new LinkedListNode<CacheEntry>(this);
    }

    public CacheEntry(SafeName name, string key, FileMetadata file, string dataPath, long validatedAt)
        : this(key, dataPath, file.Size, validatedAt)
    {
        Name = name;
        File = file;
    }

    public string Key { get; }

    public string DataPath { get; }

    /// <summary>Bytes of file data, from the data file itself.</summary>
    public long Size { get; }

    /// <summary>Null until loaded.</summary>
    public SafeName? Name { get; private set; }

    /// <summary>Null until loaded.</summary>
    public FileMetadata? File { get; private set; }

    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Name), nameof(File))]
    public bool IsLoaded => File is not null;

    /// <summary>The name where known, else the key: for log lines.</summary>
    public string Label => Name?.Value ?? Key;

    public void Load(SafeName name, FileMetadata file)
    {
        Name = name;
        File = file;
    }

    /// <summary>The head of a fresh hit on the whole file, made once per entry and version (a ResponseHead is
    /// immutable): one per 4 KiB hit was a sixth of what a hit allocated. Racing callers may each make one; either
    /// is right.</summary>
    public ResponseHead WholeFileHitHead(FileMetadata file)
    {
        var head = _wholeFileHitHead;
        if (head is null || !ReferenceEquals(head.File, file))
        {
            _wholeFileHitHead = head = new ResponseHead(StatusCode.Ok, "")
            {
                File = file,
                Offset = 0,
                Length = file.Size,
                Source = ResponseSource.CacheHit,
            };
        }
        return head;
    }

    private ResponseHead? _wholeFileHitHead;

    /// <summary>When the origin last confirmed this version (<see cref="Environment.TickCount64"/> ms).</summary>
    public long ValidatedAt { get; set; }

    /// <summary>The last revalidation could not reach the origin: serve as stale until one succeeds.</summary>
    public bool Stale { get; set; }

    /// <summary>Responses currently reading this entry's file; such an entry is never evicted.</summary>
    public int Readers { get; set; }

    /// <summary>Dropped from the index; its data file goes once the last reader is done.</summary>
    public bool Removed { get; set; }

    /// <summary>Descriptor for small reads, shared by every response; open from first use until deletion.</summary>
    public Microsoft.Win32.SafeHandles.SafeFileHandle? SharedHandle { get; set; }

    /// <summary>The whole data file in memory, for a small entry (<see cref="CacheSource"/>'s small-body budget):
    /// its hits copy from here instead of reading the file. Immutable once set, like the committed file it copies;
    /// a response that holds it keeps a consistent body after the entry is dropped. Set and cleared under the
    /// cache's lock.</summary>
    public SmallBody? InMemory { get; set; }

    /// <summary>The one check of an entry found at start-up, shared by its first requests.</summary>
    public Task<bool>? Loading { get; set; }

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
