using System.Buffers.Binary;

namespace FileProxy.Protocol.Wire;

/// <summary>
/// The fixed 8-byte header that opens every frame, big-endian:
/// <c>[u16 magic 0x4650 "FP"][u8 version][u8 opcode][u32 payload length]</c>, then the payload.
/// A GET response's body follows its frame as raw bytes, outside the frame length.
/// </summary>
public readonly record struct FrameHeader(Opcode Opcode, int PayloadLength)
{
    /// <summary>Parses a header. Returns false when fewer than 8 bytes are available;
    /// throws <see cref="ProtocolException"/> for a wrong magic, version or length.</summary>
    public static bool TryRead(ReadOnlySpan<byte> buffer, out FrameHeader header)
    {
        header = default;
        if (buffer.Length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(buffer) != ProtocolLimits.Magic)
        {
            throw new ProtocolException("not a FileProxy peer (wrong magic)");
        }
        if (buffer.Length < ProtocolLimits.FrameHeaderLength)
        {
            return false;
        }
        if (buffer[2] != ProtocolLimits.Version)
        {
            throw new ProtocolException(StatusCode.UnsupportedVersion,
                $"protocol version {buffer[2]} is not supported; this peer speaks version {ProtocolLimits.Version}");
        }
        var length = BinaryPrimitives.ReadUInt32BigEndian(buffer[4..]);
        if (length > ProtocolLimits.MaxFrameLength)
        {
            throw new ProtocolException($"frame payload of {length} bytes exceeds the limit of {ProtocolLimits.MaxFrameLength}");
        }
        header = new FrameHeader((Opcode)buffer[3], (int)length);
        return true;
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, ProtocolLimits.Magic);
        destination[2] = ProtocolLimits.Version;
        destination[3] = (byte)Opcode;
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], (uint)PayloadLength);
    }
}
