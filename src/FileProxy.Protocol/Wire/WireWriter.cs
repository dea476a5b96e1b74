using System.Buffers.Binary;
using System.Text;

namespace FileProxy.Protocol.Wire;

/// <summary>Writes big-endian fields into a span; the caller sizes the span from the limits.</summary>
internal ref struct WireWriter
{
    private readonly Span<byte> _buffer;
    private int _position;

    public WireWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    public readonly int Position => _position;

    public void U8(byte value) => _buffer[_position++] = value;

    public void U16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[_position..], value);
        _position += 2;
    }

    /// <summary>Overwrites a u16 written earlier (a count known only after what it counts).</summary>
    public readonly void PatchU16(int position, ushort value) => BinaryPrimitives.WriteUInt16BigEndian(_buffer[position..], value);

    public void U32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer[_position..], value);
        _position += 4;
    }

    public void U64(ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_buffer[_position..], value);
        _position += 8;
    }

    public void Bytes(ReadOnlySpan<byte> value)
    {
        value.CopyTo(_buffer[_position..]);
        _position += value.Length;
    }

    /// <summary>A u16 length and the UTF-8 bytes of <paramref name="value"/>, cut at <paramref name="maxBytes"/>
    /// on a character boundary.</summary>
    public void String16(string value, int maxBytes)
    {
        var lengthAt = _position;
        _position += 2;
        var room = _buffer.Slice(_position, Math.Min(maxBytes, _buffer.Length - _position));
        int written;
        if (!Encoding.UTF8.TryGetBytes(value, room, out written))
        {
            // Cut on a character boundary: encode a shorter prefix until it fits.
            var chars = Math.Min(value.Length, room.Length);
            while (!Encoding.UTF8.TryGetBytes(value.AsSpan(0, chars), room, out written))
            {
                chars--;
            }
            if (chars > 0 && char.IsHighSurrogate(value[chars - 1]))
            {
                written = Encoding.UTF8.GetBytes(value.AsSpan(0, chars - 1), room);
            }
        }
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[lengthAt..], (ushort)written);
        _position += written;
    }
}
