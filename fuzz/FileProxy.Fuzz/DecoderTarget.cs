using FileProxy.Protocol;
using FileProxy.Protocol.Wire;

namespace FileProxy.Fuzz;

/// <summary>
/// Reads the input as a stream of frames, as a server and a client would, and decodes each payload as every kind
/// of request and response. The only exception allowed out of the codec is <see cref="ProtocolException"/>; a
/// request that decodes must encode again and decode to the same request.
/// </summary>
internal static class DecoderTarget
{
    private static readonly Opcode[] RequestOpcodes = [Opcode.Get, Opcode.Stat, Opcode.Stats, Opcode.Purge, Opcode.List];

    public static void Run(ReadOnlySpan<byte> input)
    {
        var rest = input;
        while (rest.Length > 0)
        {
            FrameHeader header;
            try
            {
                if (!FrameHeader.TryRead(rest, out header))
                {
                    return;
                }
            }
            catch (ProtocolException)
            {
                return;
            }
            if (header.PayloadLength < 0 || header.PayloadLength > ProtocolLimits.MaxFrameLength)
            {
                throw new FuzzFailure($"header accepted a payload length of {header.PayloadLength}");
            }
            var end = Math.Min(rest.Length, ProtocolLimits.FrameHeaderLength + header.PayloadLength);
            var payload = rest[ProtocolLimits.FrameHeaderLength..end];
            DecodeRequest(header.Opcode, payload);
            foreach (var opcode in RequestOpcodes)
            {
                DecodeResponse(opcode, header, payload);
            }
            rest = rest[end..];
        }
    }

    private static void DecodeRequest(Opcode opcode, ReadOnlySpan<byte> payload)
    {
        Request request;
        try
        {
            request = WireCodec.DecodeRequest(opcode, payload);
        }
        catch (ProtocolException)
        {
            return;
        }
        var name = request switch
        {
            GetRequest get => get.Name,
            StatRequest stat => stat.Name,
            PurgeRequest purge => purge.Name,
            _ => null,
        };
        if (name is not null && SafeName.TryCreate(name, out var safeName, out _) && safeName.Value != name)
        {
            throw new FuzzFailure("a safe name changed its value");
        }
        var buffer = new byte[WireCodec.MaxRequestFrame];
        var length = WireCodec.EncodeRequest(request, buffer);
        if (!FrameHeader.TryRead(buffer.AsSpan(0, length), out var header))
        {
            throw new FuzzFailure("an encoded request has no whole header");
        }
        var again = WireCodec.DecodeRequest(header.Opcode, buffer.AsSpan(ProtocolLimits.FrameHeaderLength, length - ProtocolLimits.FrameHeaderLength));
        if (again != request)
        {
            throw new FuzzFailure($"{request} encoded and decoded as {again}");
        }
    }

    private static void DecodeResponse(Opcode requestOpcode, FrameHeader header, ReadOnlySpan<byte> payload)
    {
        ResponseHead head;
        try
        {
            head = WireCodec.DecodeResponse(requestOpcode, header, payload);
        }
        catch (ProtocolException)
        {
            return;
        }
        if (!Enum.IsDefined(head.Status))
        {
            throw new FuzzFailure($"a response with unknown status {(byte)head.Status} was accepted");
        }
        if (head.IsOk && requestOpcode is Opcode.Get or Opcode.Stat && !Enum.IsDefined(head.Source))
        {
            throw new FuzzFailure($"a response with unknown source {(byte)head.Source} was accepted");
        }
        if (head.IsOk && requestOpcode == Opcode.Get
            && (head.File is null || head.Offset < 0 || head.Length < 0 || head.Offset + head.Length > head.File.Size))
        {
            throw new FuzzFailure($"a GET response with range {head.Offset}+{head.Length} was accepted");
        }
    }
}
