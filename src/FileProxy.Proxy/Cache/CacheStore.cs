using System.Collections.Concurrent;
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
    private readonly bool _fsync;

    public CacheStore(string directory, bool fsync, ILogger log)
    {
        Root = Path.GetFullPath(directory);
        EntriesDirectory = Path.Join(Root, "entries");
        TempDirectory = Path.Join(Root, "tmp");
        _fsync = fsync;
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
        using (var meta = new FileStream(metaTemp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            meta.Write(record.ToBytes());
            if (_fsync)
            {
                meta.Flush(flushToDisk: true);
            }
        }
        File.Move(metaTemp, MetaPath(key), overwrite: true);
        return dataPath;
    }

    /// <summary>Removes an entry's files: the metadata first, so a crash in between leaves only an orphan.</summary>
    public void Delete(string key, string dataPath)
    {
        TryDelete(MetaPath(key));
        TryDelete(dataPath);
    }

    /// <summary>Removes a data file whose entry was replaced by a newer version.</summary>
    public void DeleteData(string dataPath) => TryDelete(dataPath);

    /// <summary>Reads every committed entry back, deleting leftovers: temporary files, metadata without a data
    /// file of the recorded size (a truncated entry is never served), and data files no metadata points to.</summary>
    public IReadOnlyList<(string Key, EntryRecord Record, string DataPath)> Load()
    {
        var leftovers = 0;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            TryDelete(file);
            leftovers++;
        }
        var loaded = new ConcurrentBag<(string, EntryRecord, string)>();
        var dropped = 0;
        Parallel.ForEach(Directory.EnumerateDirectories(EntriesDirectory), shard =>
        {
            var metas = new List<FileInfo>();
            var data = new Dictionary<string, FileInfo>(StringComparer.Ordinal);
            foreach (var file in new DirectoryInfo(shard).EnumerateFiles())
            {
                if (file.Name.EndsWith(".meta", StringComparison.Ordinal))
                {
                    metas.Add(file);
                }
                else if (file.Name.EndsWith(".data", StringComparison.Ordinal))
                {
                    data[file.Name] = file;
                }
                else
                {
                    TryDelete(file.FullName); // an interrupted metadata write
                }
            }
            foreach (var meta in metas)
            {
                var key = meta.Name[..^".meta".Length];
                EntryRecord? record = null;
                try
                {
                    record = EntryRecord.TryParse(File.ReadAllText(meta.FullName));
                }
                catch (IOException e)
                {
                    _log.Warning("Cannot read cache metadata {Path}: {Reason}", meta.FullName, e.Message);
                }
                if (record is not null && SafeName.TryCreate(record.Name, out var name, out _) && KeyOf(name) == key
                    && data.Remove(record.DataFileName, out var dataFile) && dataFile.Length == record.File.Size)
                {
                    loaded.Add((key, record, dataFile.FullName));
                    continue;
                }
                Interlocked.Increment(ref dropped);
                TryDelete(meta.FullName);
                if (record is not null && data.Remove(record.DataFileName, out var wrongSize))
                {
                    TryDelete(wrongSize.FullName);
                }
            }
            foreach (var orphan in data.Values)
            {
                TryDelete(orphan.FullName);
                Interlocked.Increment(ref leftovers);
            }
        });
        if (leftovers + dropped > 0)
        {
            _log.Warning("Cache start-up removed {Leftovers} leftover files and {Dropped} damaged entries", leftovers, dropped);
        }
        return [.. loaded];
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
