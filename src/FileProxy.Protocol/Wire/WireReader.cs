using System.Buffers.Binary;
using System.Text;

namespace FileProxy.Protocol.Wire;

/// <summary>Reads big-endian fields from one frame's payload; running past the end is a protocol error.</summary>
internal ref struct WireReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlySpan<byte> _payload;
    private int _position;

    public WireReader(ReadOnlySpan<byte> payload)
    {
        _payload = payload;
        _position = 0;
    }

    public readonly int Remaining => _payload.Length - _position;

    public byte U8()
    {
        Need(1);
        return _payload[_position++];
    }

    public ushort U16()
    {
        Need(2);
        var value = BinaryPrimitives.ReadUInt16BigEndian(_payload[_position..]);
        _position += 2;
        return value;
    }

    public ulong U64()
    {
        Need(8);
        var value = BinaryPrimitives.ReadUInt64BigEndian(_payload[_position..]);
        _position += 8;
        return value;
    }

    public ReadOnlySpan<byte> Bytes(int count)
    {
        Need(count);
        var value = _payload.Slice(_position, count);
        _position += count;
        return value;
    }

    public string String16(int maxBytes, string field)
    {
        var length = U16();
        if (length > maxBytes)
        {
            throw new ProtocolException($"{field} is {length} bytes; the limit is {maxBytes}");
        }
        var bytes = Bytes(length);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new ProtocolException($"{field} is not valid UTF-8");
        }
    }

    /// <summary>Every field was read: trailing bytes mean the peer and we disagree on the layout.</summary>
    public readonly void End()
    {
        if (_position != _payload.Length)
        {
            throw new ProtocolException($"frame has {_payload.Length - _position} unexpected trailing bytes");
        }
    }

    private readonly void Need(int count)
    {
        if (count > _payload.Length - _position)
        {
            throw new ProtocolException("frame payload is shorter than its fields");
        }
    }
}
