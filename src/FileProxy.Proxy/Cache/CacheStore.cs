using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Enumeration;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using FileProxy.Protocol;
using FileProxy.Hosting;
using FileProxy.Protocol.Native;
using Microsoft.Win32.SafeHandles;
using Serilog;

namespace FileProxy.Proxy.Cache;

/// <summary>
/// The cache directory on disk. Names never become paths: an entry lives under
/// <c>entries/XX/KEY.meta</c> and <c>entries/XX/KEY.GEN.data</c>, where KEY is the SHA-256 of the name in hex and
/// XX its first two digits, so no name can reach outside the directory. Fills write to <c>tmp/</c>; an entry is
/// committed by renaming its data into place and then atomically writing its <c>.meta</c>, the commit point.
/// The directory carries a <c>CACHEDIR.TAG</c> the proxy wrote (a non-empty directory without one is refused, so
/// <c>--cache-dir /var</c> cannot empty <c>/var/tmp</c>), and one proxy at a time holds an exclusive flock on its
/// <c>lock</c> file, which names the holder's process id.
/// </summary>
internal sealed partial class CacheStore : IDisposable
{
    /// <summary>Exit code of a proxy whose cache directory another proxy holds.</summary>
    public const int InUseExitCode = 3;

    public const string MarkerFileName = "CACHEDIR.TAG";

    public const string LockFileName = "lock";

    /// <summary>The Cache Directory Tagging Specification's signature (https://bford.info/cachedir/): backup tools
    /// skip a directory tagged so.</summary>
    private const string MarkerText = "Signature: 8a477f597d28d172789f06886806bc55\n"
        + "# This directory is a FileProxy proxy's cache. The proxy removes only files whose names it made.\n"
        + "# For information about cache directory tags, see https://bford.info/cachedir/\n";

    private readonly ILogger _log;
    private readonly SafeFileHandle _lock;

    public CacheStore(string directory, ILogger log)
    {
        Root = Path.GetFullPath(directory);
        EntriesDirectory = Path.Join(Root, "entries");
        TempDirectory = Path.Join(Root, "tmp");
        _log = log;
        ClaimDirectory();
        _lock = Lock();
        Directory.CreateDirectory(EntriesDirectory);
        Directory.CreateDirectory(TempDirectory);
    }

    public string Root { get; }

    public void Dispose() => _lock.Dispose();

    /// <summary>Creates the directory with its marker, or checks that an existing one is ours. A directory that
    /// holds nothing but a cache's own parts (a cache from before the marker) is adopted.</summary>
    private void ClaimDirectory()
    {
        var marker = Path.Join(Root, MarkerFileName);
        try
        {
            Directory.CreateDirectory(Root);
            if (File.Exists(marker))
            {
                return;
            }
            var foreign = Directory.EnumerateFileSystemEntries(Root).Select(Path.GetFileName)
                .Where(name => name is not ("entries" or "tmp" or LockFileName)).Take(3).ToList();
            if (foreign.Count > 0)
            {
                throw new StartException($"cache directory '{Root}' is not empty and was not made by the proxy (no {MarkerFileName}; "
                    + $"it holds {string.Join(", ", foreign.Select(name => $"'{name}'"))}…); give a new or empty directory");
            }
            File.WriteAllText(marker, MarkerText);
        }
        catch (Exception e) when (e is IOException and not StartException or UnauthorizedAccessException)
        {
            throw new StartException($"cache directory '{Root}' is not usable: {e.Message}");
        }
    }

    /// <summary>
    /// Takes the directory's lock for this process's life, or says which process holds it. A lock this very process
    /// holds is waited for, briefly: a store of this process that closed a moment ago may still have its lock held by
    /// a child process between fork(2) and exec(2), whose copy of the descriptor (close-on-exec) keeps the flock until
    /// the exec (seen in the tests, which restart a proxy in process while others start programs).
    /// </summary>
    private SafeFileHandle Lock()
    {
        var path = Path.Join(Root, LockFileName);
        var ownId = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var deadline = Environment.TickCount64 + OwnLockWaitMs;
        while (true)
        {
            if (TryLock(path, out var holder) is { } handle)
            {
                // Fixed width, so a shorter id never leaves digits of a longer one behind.
                RandomAccess.Write(handle, Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{ownId,-20}\n")), 0);
                return handle;
            }
            if (holder != ownId || Environment.TickCount64 >= deadline)
            {
                throw new StartException(
                    $"cache directory '{Root}' is in use by another proxy (process {(holder.Length > 0 ? holder : "unknown")}); "
                    + "one proxy per cache directory", InUseExitCode);
            }
            Thread.Sleep(10);
        }
    }

    private const int OwnLockWaitMs = 2000;

    /// <summary>The locked lock file, or null with the process id the holder wrote into it.</summary>
    private static SafeFileHandle? TryLock(string path, out string holder)
    {
        var error = Posix.TryOpenUnlocked(path, out var handle);
        if (error != 0)
        {
            handle.Dispose();
            throw new StartException($"cannot open the lock file '{path}': {new System.ComponentModel.Win32Exception(error).Message}");
        }
        error = Posix.TryLockExclusive(handle);
        if (error is not (0 or Errno.EAGAIN))
        {
            handle.Dispose();
            throw new StartException($"cannot lock '{path}': {new System.ComponentModel.Win32Exception(error).Message}");
        }
        if (error != 0)
        {
            var buffer = new byte[64];
            holder = Encoding.ASCII.GetString(buffer, 0, RandomAccess.Read(handle, buffer, 0)).Trim();
            handle.Dispose();
            return null;
        }
        holder = "";
        return handle;
    }

    public string EntriesDirectory { get; }

    public string TempDirectory { get; }

    /// <summary>The entry key of a name: its SHA-256 in lowercase hex.</summary>
    public static string KeyOf(SafeName name)
    {
        Span<char> key = stackalloc char[KeyLength];
        KeyOf(name, key);
        return new string(key);
    }

    /// <summary>Characters in a key: SHA-256 in lowercase hex.</summary>
    public const int KeyLength = 2 * SHA256.HashSizeInBytes;

    /// <summary><see cref="KeyOf(SafeName)"/> into <paramref name="destination"/> (<see cref="KeyLength"/> chars),
    /// for a lookup that allocates nothing.</summary>
    public static void KeyOf(SafeName name, Span<char> destination)
    {
        const int StackBytes = 512;
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        if (Encoding.UTF8.GetMaxByteCount(name.Value.Length) <= StackBytes)
        {
            Span<byte> bytes = stackalloc byte[StackBytes];
            SHA256.HashData(bytes[..Encoding.UTF8.GetBytes(name.Value, bytes)], hash);
        }
        else
        {
            SHA256.HashData(Encoding.UTF8.GetBytes(name.Value), hash);
        }
        if (!Convert.TryToHexStringLower(hash, destination, out _))
        {
            throw new ArgumentException($"a key takes {KeyLength} characters", nameof(destination));
        }
    }

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

    /// <summary>One committed entry found by <see cref="Scan"/>. <paramref name="ConfirmedUtcTicks"/> is its
    /// metadata's modification time: when the entry was committed or last confirmed by the origin.</summary>
    public readonly record struct FoundEntry(string Key, string DataPath, long Size, long WrittenUtcTicks, long ConfirmedUtcTicks = 0);

    /// <summary>Records that the origin confirmed an entry now (its metadata's modification time), so the entry's
    /// age survives a restart. Best effort: an entry whose time cannot be set is confirmed again after a restart.</summary>
    public bool MarkConfirmed(string key)
    {
        try
        {
            File.SetLastWriteTimeUtc(MetaPath(key), DateTime.UtcNow);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Finds every committed entry: a <c>KEY.meta</c> beside exactly one <c>KEY.*.data</c>. Deletes leftovers on
    /// the way: temporary files, metadata without data, data without metadata, interrupted metadata writes. Reads
    /// no file contents (that is left to each entry's first use), so 100,000 entries take one directory scan.
    /// </summary>
    public List<FoundEntry> Scan()
    {
        var leftovers = 0;
        var foreign = 0;
        foreach (var file in Directory.EnumerateFiles(TempDirectory))
        {
            if (TempName().IsMatch(Path.GetFileName(file)))
            {
                TryDelete(file);
                leftovers++;
            }
            else
            {
                foreign++;
            }
        }
        var found = new ConcurrentBag<List<FoundEntry>>();
        var shards = Directory.EnumerateDirectories(EntriesDirectory).Where(shard => ShardName().IsMatch(Path.GetFileName(shard)));
        Parallel.ForEach(shards, shard =>
        {
            var prefix = Path.GetFileName(shard);
            var metas = new Dictionary<string, long>(StringComparer.Ordinal); // key -> metadata's modification time
            var data = new Dictionary<string, List<FoundEntry>>(StringComparer.Ordinal);
            var files = new FileSystemEnumerable<(string Name, long Size, long Ticks)>(shard,
                (ref FileSystemEntry entry) => (entry.FileName.ToString(), entry.Length, entry.LastWriteTimeUtc.UtcTicks),
                new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = FileAttributes.Directory });
            foreach (var (name, size, ticks) in files)
            {
                var match = EntryFileName().Match(name);
                if (!match.Success || !name.StartsWith(prefix, StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref foreign); // not a name the proxy makes: never deleted
                    continue;
                }
                var key = match.Groups["key"].Value;
                if (match.Groups["meta"].Success)
                {
                    metas[key] = ticks;
                }
                else if (match.Groups["data"].Success)
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
            foreach (var (key, confirmed) in metas)
            {
                if (data.Remove(key, out var candidates) && Choose(key, candidates) is { } chosen)
                {
                    entries.Add(chosen with { ConfirmedUtcTicks = confirmed });
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
        if (foreign > 0)
        {
            _log.Warning("Cache start-up left alone {Foreign} files whose names the proxy does not make", foreign);
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

    [GeneratedRegex("^[0-9a-f]{64}\\.[0-9a-f]{32}\\.part$")]
    private static partial Regex TempName();

    [GeneratedRegex("^[0-9a-f]{2}$")]
    private static partial Regex ShardName();

    /// <summary>KEY.meta, KEY.GUID.data and KEY.GUID.meta-tmp (an interrupted metadata write).</summary>
    [GeneratedRegex("^(?<key>[0-9a-f]{64})(?:(?<meta>\\.meta)|\\.[0-9a-f]{32}(?:(?<data>\\.data)|\\.meta-tmp))$")]
    private static partial Regex EntryFileName();

    /// <summary>Deletes a file, or logs why it cannot (a disk gone read-only, say).</summary>
    public void TryDelete(string path)
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
