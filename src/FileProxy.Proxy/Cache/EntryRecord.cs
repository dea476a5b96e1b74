using System.Globalization;
using System.Text;
using FileProxy.Protocol.Wire;

namespace FileProxy.Proxy.Cache;

/// <summary>
/// What the <c>.meta</c> file beside each cached file says, as lines of <c>key value</c>:
/// format, name, size, version, blake3, data (the data file's name in the same directory), fetched (Unix ms).
/// </summary>
internal sealed record EntryRecord(string Name, FileMetadata File, string DataFileName, long FetchedUnixMs)
{
    private const string Format = "fileproxy-cache-entry 2";

    public string Serialize() => string.Create(CultureInfo.InvariantCulture,
        $"{Format}\nname {Name}\nsize {File.Size}\nversion {File.Version}\nblake3 {File.Digest}\ndata {DataFileName}\nfetched {FetchedUnixMs}\n");

    public static EntryRecord? TryParse(string text)
    {
        var lines = text.Split('\n');
        if (lines.Length < 7 || lines[0] != Format)
        {
            return null;
        }
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in lines.AsSpan(1))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0)
            {
                fields[line[..space]] = line[(space + 1)..];
            }
        }
        try
        {
            var file = new FileMetadata(
                long.Parse(fields["size"], CultureInfo.InvariantCulture),
                fields["version"],
                ContentDigest.Parse(fields["blake3"]));
            var data = fields["data"];
            return data.Contains('/', StringComparison.Ordinal) || file.Size < 0
                ? null
                : new EntryRecord(fields["name"], file, data, long.Parse(fields["fetched"], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is KeyNotFoundException or FormatException or OverflowException or ArgumentException)
        {
            return null;
        }
    }

    public byte[] ToBytes() => Encoding.UTF8.GetBytes(Serialize());
}
