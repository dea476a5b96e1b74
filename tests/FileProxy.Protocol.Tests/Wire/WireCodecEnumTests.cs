using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

/// <summary>A status or source byte this peer does not know is a protocol error that names the value, never a
/// number cast into the enum (found by fuzz/run.sh: fuzz/regressions/unknown-*).</summary>
public sealed class WireCodecEnumTests
{
    [Theory]
    [InlineData(13)]
    [InlineData(0x7F)]
    [InlineData(0xE8)]
    [InlineData(0xFF)]
    public void Response_with_an_unknown_status_throws_ProtocolException_naming_it(byte status)
    {
        var (requestOpcode, head) = Samples.Responses["GET NotFound"];
        var frame = Frames.Response(requestOpcode, head);
        var payload = Frames.PayloadOf(frame);
        payload[0] = status;

        var act = () => WireCodec.DecodeResponse(requestOpcode, Frames.HeaderOf(frame), payload);

        act.Should().Throw<ProtocolException>().WithMessage($"unknown status code {status} in the response");
    }

    [Theory]
    [InlineData("GET Ok", 6)]
    [InlineData("GET Ok", 0x55)]
    [InlineData("STAT Ok", 0x81)]
    [InlineData("STAT Ok", 0xFF)]
    public void Response_with_an_unknown_source_throws_ProtocolException_naming_it(string sample, byte source)
    {
        var (requestOpcode, head) = Samples.Responses[sample];
        var frame = Frames.Response(requestOpcode, head);
        var payload = Frames.PayloadOf(frame);
        payload[^1] = source; // the source is the last field of both layouts

        var act = () => WireCodec.DecodeResponse(requestOpcode, Frames.HeaderOf(frame), payload);

        act.Should().Throw<ProtocolException>().WithMessage($"unknown response source {source} in the response");
    }

    [Fact]
    public void Every_known_status_and_source_still_decodes()
    {
        foreach (var status in Enum.GetValues<StatusCode>().Where(status => status != StatusCode.Ok))
        {
            var frame = Frames.Response(Opcode.Get, ResponseHead.Error(status, "x"));
            Frames.DecodeResponse(Opcode.Get, frame).Status.Should().Be(status);
        }
        var (requestOpcode, head) = Samples.Responses["GET Ok"];
        foreach (var source in Enum.GetValues<ResponseSource>())
        {
            var frame = Frames.Response(requestOpcode, head with { Source = source });
            Frames.DecodeResponse(requestOpcode, frame).Source.Should().Be(source);
        }
    }
}
