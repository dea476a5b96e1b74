using System.Buffers.Binary;
using System.Text;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

/// <summary>Builds whole frames with the codec, or by hand for frames the codec would never write.</summary>
internal static class Frames
{
    public static byte[] Request(Request request)
    {
        var buffer = new byte[WireCodec.MaxRequestFrame];
        var length = WireCodec.EncodeRequest(request, buffer);
        return buffer[..length];
    }

    public static byte[] Response(Opcode requestOpcode, ResponseHead head)
    {
        var buffer = new byte[WireCodec.MaxResponseFrame];
        var length = WireCodec.EncodeResponse(requestOpcode, head, buffer);
        return buffer[..length];
    }

    /// <summary>A valid header for <paramref name="opcode"/> followed by <paramref name="payload"/>.</summary>
    public static byte[] Raw(Opcode opcode, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[ProtocolLimits.FrameHeaderLength + payload.Length];
        new FrameHeader(opcode, payload.Length).Write(frame);
        payload.CopyTo(frame.AsSpan(ProtocolLimits.FrameHeaderLength));
        return frame;
    }

    /// <summary>Eight header bytes with every field chosen by the caller.</summary>
    public static byte[] Header(ushort magic, byte version, byte opcode, uint payloadLength)
    {
        var header = new byte[ProtocolLimits.FrameHeaderLength];
        BinaryPrimitives.WriteUInt16BigEndian(header, magic);
        header[2] = version;
        header[3] = opcode;
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), payloadLength);
        return header;
    }

    public static FrameHeader HeaderOf(byte[] frame)
    {
        FrameHeader.TryRead(frame, out var header).Should().BeTrue();
        header.PayloadLength.Should().Be(frame.Length - ProtocolLimits.FrameHeaderLength, "the header counts the payload exactly");
        return header;
    }

    public static byte[] PayloadOf(byte[] frame) => frame[ProtocolLimits.FrameHeaderLength..];

    public static Request DecodeRequest(byte[] frame) =>
        WireCodec.DecodeRequest(HeaderOf(frame).Opcode, PayloadOf(frame));

    public static ResponseHead DecodeResponse(Opcode requestOpcode, byte[] frame) =>
        WireCodec.DecodeResponse(requestOpcode, HeaderOf(frame), PayloadOf(frame));
}

/// <summary>Writes big-endian payload fields by hand, independently of <c>WireWriter</c>.</summary>
internal sealed class PayloadBuilder
{
    private readonly List<byte> _bytes = [];

    public PayloadBuilder U8(byte value)
    {
        _bytes.Add(value);
        return this;
    }

    public PayloadBuilder U16(ushort value)
    {
        Span<byte> field = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(field, value);
        return Bytes(field);
    }

    public PayloadBuilder U64(ulong value)
    {
        Span<byte> field = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(field, value);
        return Bytes(field);
    }

    public PayloadBuilder Bytes(ReadOnlySpan<byte> value)
    {
        _bytes.AddRange(value);
        return this;
    }

    /// <summary>A u16 byte count and the bytes, valid UTF-8 or not.</summary>
    public PayloadBuilder Str16(ReadOnlySpan<byte> utf8) => U16((ushort)utf8.Length).Bytes(utf8);

    public PayloadBuilder Str16(string value) => Str16(Encoding.UTF8.GetBytes(value));

    public byte[] ToArray() => [.. _bytes];
}
