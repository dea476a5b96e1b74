using FileProxy.Protocol.Native;
using FileProxy.Protocol.Server;

namespace FileProxy.Protocol.Tests.Server;

/// <summary>How many connections a server takes given its open file limit: never so many that the descriptors
/// run out (the process then died with "Out of memory.").</summary>
public sealed class ConnectionLimitTests
{
    [Theory]
    [InlineData(160, 160, 70, 26)]       // the reproduction: 160 - 70 open - 64 reserved
    [InlineData(4096, 1024, 70, 698)]    // 1024 - 70 - 256 (a quarter)
    [InlineData(4096, 20000, 70, 4096)]  // room enough: the option decides
    [InlineData(4096, 100, 70, 1)]       // nothing left: still one, never zero or negative
    public void The_limit_leaves_what_is_open_and_a_reserve(int maxConnections, int soft, int openNow, int expected)
    {
        ProtocolServer.ConnectionLimit(maxConnections, new Posix.FileLimit((ulong)soft, (ulong)soft), openNow).Should().Be(expected);
    }

    [Fact]
    public void Without_a_known_file_limit_the_option_decides() =>
        ProtocolServer.ConnectionLimit(4096, null, 70).Should().Be(4096);

    [Fact]
    public void An_unlimited_file_limit_does_not_overflow() =>
        ProtocolServer.ConnectionLimit(4096, new Posix.FileLimit(ulong.MaxValue, ulong.MaxValue), 70).Should().Be(4096);
}
