using System.Text;
using FileProxy.Protocol.Wire;
using Serilog;

namespace FileProxy.Server;

/// <summary>
/// The BLAKE3 digests of the S3 objects this origin has hashed, one per object key and version, kept in a local file
/// so that a restart does not read every object again. The file is a log of lines
/// <c>KEY TAB VERSION TAB DIGEST-HEX</c>, appended as digests are computed; the last line for a key wins. A torn last
/// line (a crash mid-write) is skipped on load, and a log grown to more than twice its live entries is rewritten
/// (temporary file, then rename). Keys cannot hold a tab or a newline: <see cref="FileProxy.Protocol.SafeName"/>
/// refuses control characters, and the prefix is checked the same way.
/// </summary>
internal sealed class S3DigestIndex : IDisposable
{
    private const int CompactSlack = 1000;
    private readonly Dictionary<string, (string Version, ContentDigest Digest)> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly string _path;
    private FileStream _log;
    private int _lines;

    private S3DigestIndex(string path, FileStream log)
    {
        _path = path;
        _log = log;
    }

    public string Path => _path;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Loads the index at <paramref name="path"/> (creating it and its directory if missing).</summary>
    public static S3DigestIndex Open(string path, ILogger log)
    {
        path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var index = new S3DigestIndex(path, OpenLog(path));
        var skipped = 0;
        using (var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite), Encoding.UTF8))
        {
            while (reader.ReadLine() is { } line)
            {
                index._lines++;
                var parts = line.Split('\t');
                if (parts.Length != 3 || parts[0].Length == 0 || parts[2].Length != ContentDigest.Length * 2
                    || !IsHex(parts[2]))
                {
                    skipped++;
                    continue;
                }
                index._entries[parts[0]] = (parts[1], ContentDigest.Parse(parts[2]));
            }
        }
        if (skipped > 0)
        {
            log.Warning("Digest index {Path}: skipped {Lines} unreadable lines (a write cut short?)", path, skipped);
        }
        if (index._lines > 2 * index._entries.Count + CompactSlack)
        {
            index.Compact();
        }
        return index;
    }

    public bool TryGet(string key, string version, out ContentDigest digest)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var entry) && entry.Version == version)
            {
                digest = entry.Digest;
                return true;
            }
        }
        digest = default;
        return false;
    }

    /// <summary>Records a digest; written through to the file (not fsynced: a lost line only costs hashing again).</summary>
    public void Add(string key, string version, ContentDigest digest)
    {
        var line = Encoding.UTF8.GetBytes($"{key}\t{version}\t{digest}\n");
        lock (_lock)
        {
            _entries[key] = (version, digest);
            _log.Write(line);
            _log.Flush();
            _lines++;
            if (_lines > 2 * _entries.Count + CompactSlack)
            {
                Compact();
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _log.Dispose();
        }
    }

    private void Compact()
    {
        var temporary = _path + ".tmp";
        using (var writer = new StreamWriter(temporary, append: false, new UTF8Encoding(false)))
        {
            foreach (var (key, (version, digest)) in _entries)
            {
                writer.Write($"{key}\t{version}\t{digest}\n");
            }
        }
        _log.Dispose();
        File.Move(temporary, _path, overwrite: true);
        _log = OpenLog(_path);
        _lines = _entries.Count;
    }

    private static FileStream OpenLog(string path) =>
        new(path, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);

    private static bool IsHex(string text) => text.All(char.IsAsciiHexDigit);
}
