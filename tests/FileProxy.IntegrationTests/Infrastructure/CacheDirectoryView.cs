using System.Security.Cryptography;
using System.Text;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>Looks at a proxy's cache directory the way the proxy lays it out: <c>entries/XX/KEY.meta</c>,
/// <c>entries/XX/KEY.GEN.data</c> and <c>tmp/*.part</c>, KEY being the SHA-256 of the name in hex.</summary>
public sealed class CacheDirectoryView(string root)
{
    public string Root { get; } = root;

    public string EntriesDirectory => Path.Join(Root, "entries");

    public string TempDirectory => Path.Join(Root, "tmp");

    public string[] DataFiles => Files(EntriesDirectory, "*.data");

    public string[] MetaFiles => Files(EntriesDirectory, "*.meta");

    /// <summary>Every file under <c>entries/</c>, whatever its name.</summary>
    public string[] EntryFiles => Files(EntriesDirectory, "*");

    public string[] TempFiles => Files(TempDirectory, "*");

    public long DataBytes => DataFiles.Sum(file => new FileInfo(file).Length);

    public static string KeyOf(string name) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)));

    public string MetaPathOf(string name)
    {
        var key = KeyOf(name);
        return Path.Join(EntriesDirectory, key[..2], key + ".meta");
    }

    /// <summary>Dates <paramref name="name"/>'s last confirmation by the origin (its metadata's modification time)
    /// <paramref name="by"/> into the past, as if the proxy had been stopped that long.</summary>
    public void Age(string name, TimeSpan by) =>
        File.SetLastWriteTimeUtc(MetaPathOf(name), File.GetLastWriteTimeUtc(MetaPathOf(name)) - by);

    /// <summary>The data files of <paramref name="name"/> (one when it is cached and nobody reads an older one).</summary>
    public string[] DataPathsOf(string name)
    {
        var key = KeyOf(name);
        return Files(Path.Join(EntriesDirectory, key[..2]), key + ".*.data");
    }

    private static string[] Files(string directory, string pattern) =>
        Directory.Exists(directory) ? Directory.GetFiles(directory, pattern, SearchOption.AllDirectories) : [];
}
