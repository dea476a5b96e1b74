using System.Diagnostics.CodeAnalysis;
using System.Text;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol;

/// <summary>
/// A file name that is safe to join to a root directory: a relative path of '/'-separated segments,
/// at most <see cref="ProtocolLimits.MaxNameBytes"/> UTF-8 bytes, with no empty, "." or ".." segment,
/// no backslash, and no NUL or control character. The only way to get one is <see cref="TryCreate"/>.
/// </summary>
public sealed class SafeName : IEquatable<SafeName>
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private SafeName(string value) => Value = value;

    public string Value { get; }

    /// <summary>This name with one more segment: <c>this/entry</c>, if that is a name (no longer than the limit).</summary>
    public bool TryAppend(string entry, [NotNullWhen(true)] out SafeName? child, [NotNullWhen(false)] out string? error)
    {
        child = null;
        if (!IsEntryName(entry, out error))
        {
            return false;
        }
        return TryCreate(Value + "/" + entry, out child, out error);
    }

    /// <summary>The last segment: the default output file name on the client.</summary>
    public string FileName => Value[(Value.LastIndexOf('/') + 1)..];

    /// <summary>The name's segments joined with the platform's separator, for use under a root.</summary>
    public string RelativePath => Path.DirectorySeparatorChar == '/' ? Value : Value.Replace('/', Path.DirectorySeparatorChar);

    public static bool TryCreate(string? name, [NotNullWhen(true)] out SafeName? safeName, [NotNullWhen(false)] out string? error)
    {
        safeName = null;
        error = Check(name);
        if (error is not null)
        {
            return false;
        }
        safeName = new SafeName(name!);
        return true;
    }

    /// <summary>Whether <paramref name="name"/> can be one entry of a directory: a name by the rules, of one segment.</summary>
    public static bool IsEntryName(string? name, [NotNullWhen(false)] out string? error)
    {
        error = Check(name) ?? (name!.Contains('/', StringComparison.Ordinal) ? "an entry name has no '/'" : null);
        return error is null;
    }

    public static SafeName Create(string name) =>
        TryCreate(name, out var safeName, out var error) ? safeName : throw new ArgumentException(error, nameof(name));

    private static string? Check(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "name is empty";
        }
        int bytes;
        try
        {
            bytes = StrictUtf8.GetByteCount(name);
        }
        catch (EncoderFallbackException)
        {
            return "name is not valid Unicode";
        }
        if (bytes > ProtocolLimits.MaxNameBytes)
        {
            return $"name is {bytes} UTF-8 bytes; the limit is {ProtocolLimits.MaxNameBytes}";
        }
        if (name[0] == '/')
        {
            return "name must be relative (it starts with '/')";
        }
        foreach (var c in name)
        {
            if (c == '\\')
            {
                return "name contains a backslash; use '/' between directories";
            }
            if (char.IsControl(c))
            {
                return c == '\0' ? "name contains a NUL byte" : $"name contains control character U+{(int)c:X4}";
            }
        }
        foreach (var range in name.AsSpan().Split('/'))
        {
            var segment = name.AsSpan(range);
            if (segment.IsEmpty)
            {
                return "name has an empty segment ('//' or a trailing '/')";
            }
            if (segment is ".")
            {
                return "name has a '.' segment";
            }
            if (segment is "..")
            {
                return "name has a '..' segment";
            }
        }
        return null;
    }

    public bool Equals(SafeName? other) => other is not null && string.Equals(Value, other.Value, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as SafeName);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Value);

    public override string ToString() => Value;
}
