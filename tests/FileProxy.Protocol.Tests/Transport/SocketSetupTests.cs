using System.Net.Sockets;
using FileProxy.Protocol.Transport;

namespace FileProxy.Protocol.Tests.Transport;

public sealed class SocketSetupTests
{
    private const int IpProtoTcp = 6;
    private const int TcpNotSentLowat = 25;

    [Fact]
    public async Task A_served_connection_queues_little_unsent_and_a_client_one_sends_from_the_large_buffer_and_autotunes_what_it_receives()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        var autotunedReceiveBuffer = pair.Peer.ReceiveBufferSize;

        SocketSetup.ConfigureServed(pair.Local);
        SocketSetup.Configure(pair.Peer);

        // Linux caps SO_SNDBUF at net.core.wmem_max, doubles it for its bookkeeping and reports the doubled figure.
        var cap = int.Parse(File.ReadAllText("/proc/sys/net/core/wmem_max").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        // The small buffer goes with a short handshake (the theory below); a loopback one on a machine so loaded
        // that it measured 1 ms or more keeps the large one.
        var served = SocketSetup.ServedSendBuffer(TcpInfo.Read(pair.Local)?.Rtt) ?? SocketSetup.SocketBufferBytes;
        pair.Local.SendBufferSize.Should().Be(2 * Math.Min(served, cap));
        pair.Peer.SendBufferSize.Should().Be(2 * Math.Min(SocketSetup.SocketBufferBytes, cap));
        NotSentLowat(pair.Local).Should().Be(SocketSetup.ServedNotSentBytes);
        // Untouched: setting SO_RCVBUF at all would turn the kernel's receive autotuning off (see Configure).
        pair.Peer.ReceiveBufferSize.Should().Be(autotunedReceiveBuffer);
        pair.Local.NoDelay.Should().BeTrue();
    }

    [Theory]
    [InlineData(30u, SocketSetup.ServedSendBufferBytes)] // loopback
    [InlineData(900u, SocketSetup.ServedSendBufferBytes)] // a LAN
    [InlineData(1_000u, null)] // from 1 ms on, a 2 MiB window would cap the connection
    [InlineData(100_000u, null)] // 100 ms: keeps the 4 MiB buffers
    [InlineData(0u, null)] // no sample yet
    [InlineData(null, null)] // no TCP_INFO
    public void A_served_connection_sends_from_the_small_buffer_only_on_a_short_path(uint? rttMicroseconds, int? expected) =>
        SocketSetup.ServedSendBuffer(rttMicroseconds).Should().Be(expected);

    private static int NotSentLowat(Socket socket)
    {
        var value = new byte[4];
        socket.GetRawSocketOption(IpProtoTcp, TcpNotSentLowat, value);
        return BitConverter.ToInt32(value);
    }
}
