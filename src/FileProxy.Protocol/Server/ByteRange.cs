using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Server;

/// <summary>A requested range resolved against a file's size.</summary>
public readonly record struct ByteRange(long Offset, long Length)
{
    /// <summary>Resolves (offset, length) against <paramref name="size"/>: the length is cut at the end of the
    /// file; an offset past the end is not satisfiable (an offset equal to the size gives an empty body).</summary>
    public static bool TryResolve(ulong offset, ulong length, long size, out ByteRange range)
    {
        range = default;
        if (offset > (ulong)size)
        {
            return false;
        }
        var available = (ulong)size - offset;
        range = new ByteRange((long)offset, (long)Math.Min(length, available));
        return true;
    }

    public static ResponseHead NotSatisfiable(ulong offset, long size) =>
        ResponseHead.Error(StatusCode.RangeNotSatisfiable, $"offset {offset} is past the end of the file ({size} bytes)");

    public long End => Offset + Length;
}
