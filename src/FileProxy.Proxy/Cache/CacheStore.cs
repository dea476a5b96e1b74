using System.Collections.Concurrent;
using System.IO.Enumeration;
using System.Security.Cryptography;
using System.Text;
using FileProxy.Protocol;
using Serilog;

namespace FileProxy.Proxy.Cache;

/// <summary>
/// The cache directory on disk. Names never become paths: an entry lives under
/// <c>entries/XX/KEY.meta</c> and <c>entries/XX/KEY.GEN.data</c>, where KEY is the SHA-256 of the name in hex and
/// XX its first two digits, so no name can reach outside the directory. Fills write to <c>tmp/</c>; an entry is
/// committed by renaming its data into place and then atomically writing its <c>.meta</c>, the commit point.
/// </summary>
internal sealed class CacheStore
{
    private readonly ILogger _log;

    public CacheStore(string directory, ILogger log)
    {
        Root = Path.GetFullPath(directory);
        EntriesDirectory = Path.Join(Root, "entries");
        TempDirectory = Path.Join(Root, "tmp");
        _log = log;
        Directory.CreateDirectory(EntriesDirectory);
        Directory.CreateDirectory(TempDirectory);
    }

    public string Root { get; }

    public string EntriesDirectory { get; }

    public string TempDirectory { get; }

    public static string KeyOf(SafeName name) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name.Value)));

    public string ShardOf(string key) => Path.Join(EntriesDirectory, key[..2]);

    public string MetaPath(string key) => Path.Join(ShardOf(key), key + ".meta");

    public string DataPath(string key, string dataFileName) => Path.Join(ShardOf(key), dataFileName);

    public string NewTempPath(string key) => Path.Join(TempDirectory, $"{key}.{Guid.NewGuid():N}.part");

    /// <summary>Moves a complete, verified temporary file into place and writes its metadata (the commit point).
    /// Returns the data file's path.</summary>
    public string Commit(string key, string tempPath, EntryRecord record)
    {
        var shard = ShardOf(key);
        Directory.CreateDirectory(shard);
        var dataPath = Path.Join(shard, record.DataFileName);
        File.Move(tempPath, dataPath, overwrite: true);
        var metaTemp = Path.Join(shard, $"{key}.{Guid.NewGuid():N}.meta-tmp");
        try
        {
            using (var meta = new FileStream(metaTemp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                meta.Write(record.ToBytes());
            }
            File.Move(metaTemp, MetaPath(key), overwrite: true);
            return dataPath;
        }
        catch
        {
            // No commit point was reached: take back everything this commit made, so nothing is left uncounted.
            TryDelete(metaTemp);
            TryDelete(dataPath);
            throw;
        }
    }

    /// <summary>Removes an entry's files: the metadata first, so a crash in between leaves only an orphan.</summary>
    public void Delete(string key, string dataPath)
    {
        TryDelete(MetaPath(key));
        TryDelete(dataPath);
    }

    /// <summary>Removes a data file whose entry was replaced by a newer version.</summary>
    public void DeleteData(string dataPath) => TryDelete(dataPath);

    /// <summary>One committed entry found by <see cref="Scan"/>.</summary>
    public readonly record struct FoundEntry(string Key, string DataPath, long Size, long WrittenUtcTicks);

    /// <summary>
    /// Finds every committed entry: a <c>KEY.meta</c> beside exactly one <c>KEY.*.data</c>. Deletes leftovers on
    /// the way: temporary files, metadata without data, data without metadata, interrupted metadata writes. Reads
    /// no file contents (that is left to each entry's first use), so 100,000 entries take one directory scan.
    /// </summary>
    public List<FoundEntry> Scan()
    {
        var leftovers = 0;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            TryDelete(file);
            leftovers++;
        }
        var found = new ConcurrentBag<List<FoundEntry>>();
        Parallel.ForEach(Directory.EnumerateDirectories(EntriesDirectory), shard =>
        {
            var metas = new HashSet<string>(StringComparer.Ordinal);
            var data = new Dictionary<string, List<FoundEntry>>(StringComparer.Ordinal);
            var files = new FileSystemEnumerable<(string Name, long Size, long Ticks)>(shard,
                (ref FileSystemEntry entry) => (entry.FileName.ToString(), entry.Length, entry.LastWriteTimeUtc.UtcTicks),
                new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = FileAttributes.Directory });
            foreach (var (name, size, ticks) in files)
            {
                var dot = name.IndexOf('.', StringComparison.Ordinal);
                var key = dot > 0 ? name[..dot] : name;
                if (name.EndsWith(".meta", StringComparison.Ordinal))
                {
                    metas.Add(key);
                }
                else if (name.EndsWith(".data", StringComparison.Ordinal))
                {
                    if (!data.TryGetValue(key, out var list))
                    {
                        data[key] = list = [];
                    }
                    list.Add(new FoundEntry(key, Path.Join(shard, name), size, ticks));
                }
                else
                {
                    TryDelete(Path.Join(shard, name)); // an interrupted metadata write
                    Interlocked.Increment(ref leftovers);
                }
            }
            var entries = new List<FoundEntry>(metas.Count);
            foreach (var key in metas)
            {
                if (data.Remove(key, out var candidates) && Choose(key, candidates) is { } chosen)
                {
                    entries.Add(chosen);
                }
                else
                {
                    TryDelete(MetaPath(key));
                    Interlocked.Increment(ref leftovers);
                }
            }
            foreach (var orphan in data.Values.SelectMany(list => list))
            {
                TryDelete(orphan.DataPath);
                Interlocked.Increment(ref leftovers);
            }
            found.Add(entries);
        });
        if (leftovers > 0)
        {
            _log.Warning("Cache start-up removed {Leftovers} leftover or unpaired files", leftovers);
        }
        return [.. found.SelectMany(list => list)];
    }

    /// <summary>Picks the data file an entry's metadata names when a crash left more than one (rare: it reads the
    /// metadata), deleting the others.</summary>
    private FoundEntry? Choose(string key, List<FoundEntry> candidates)
    {
        if (candidates.Count == 1)
        {
            return candidates[0];
        }
        EntryRecord? record = null;
        try
        {
            record = EntryRecord.TryParse(File.ReadAllText(MetaPath(key)));
        }
        catch (IOException)
        {
        }
        FoundEntry? chosen = null;
        foreach (var candidate in candidates)
        {
            if (record is not null && Path.GetFileName(candidate.DataPath) == record.DataFileName)
            {
                chosen = candidate;
            }
            else
            {
                TryDelete(candidate.DataPath);
            }
        }
        return chosen;
    }

    private void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("Cannot delete {Path}: {Reason}", path, e.Message);
        }
    }
}
