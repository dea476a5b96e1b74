using System.Text;

namespace FileProxy.Protocol.Wire;

/// <summary>The order of a LIST's entries: by Unicode code point, which is the byte order of the names' UTF-8 (the
/// order S3 lists keys in). Ordinal UTF-16 order differs from it for characters above U+FFFF.</summary>
public sealed class NameOrder : IComparer<string>
{
    public static NameOrder Instance { get; } = new();

    public int Compare(string? x, string? y)
    {
        var a = (x ?? "").AsSpan();
        var b = (y ?? "").AsSpan();
        while (!a.IsEmpty && !b.IsEmpty)
        {
            if (a[0] < 0xD800 && b[0] < 0xD800)
            {
                if (a[0] != b[0])
                {
                    return a[0] - b[0];
                }
                a = a[1..];
                b = b[1..];
                continue;
            }
            Rune.DecodeFromUtf16(a, out var ra, out var na);
            Rune.DecodeFromUtf16(b, out var rb, out var nb);
            if (ra.Value != rb.Value)
            {
                return ra.Value.CompareTo(rb.Value);
            }
            a = a[na..];
            b = b[nb..];
        }
        return (a.IsEmpty ? 0 : 1) - (b.IsEmpty ? 0 : 1); // a prefix comes first
    }
}
