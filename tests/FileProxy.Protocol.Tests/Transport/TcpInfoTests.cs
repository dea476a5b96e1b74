using System.Runtime.InteropServices;
using FileProxy.Protocol.Transport;

namespace FileProxy.Protocol.Tests.Transport;

public sealed class TcpInfoTests
{
    [Fact]
    public void Fields_sit_at_the_offsets_of_struct_tcp_info()
    {
        Marshal.SizeOf<TcpInfo>().Should().Be(228);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.CaState)).Should().Be(1);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.Rtt)).Should().Be(68);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.SndCwnd)).Should().Be(80);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.RcvRtt)).Should().Be(92);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.TotalRetrans)).Should().Be(100);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.BytesReceived)).Should().Be(128);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.MinRtt)).Should().Be(148);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.DeliveryRate)).Should().Be(160);
        Marshal.OffsetOf<TcpInfo>(nameof(TcpInfo.RcvOooPack)).Should().Be(224);
    }

    [Fact]
    public async Task A_connected_socket_reports_the_bytes_it_received()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        await pair.Peer.SendAsync(new byte[1000], deadline.Token);
        var buffer = new byte[1000];
        var read = 0;
        while (read < buffer.Length)
        {
            read += await pair.Local.ReceiveAsync(buffer.AsMemory(read), deadline.Token);
        }

        var info = TcpInfo.Read(pair.Local);

        info.Should().NotBeNull();
        info!.Value.BytesReceived.Should().Be(1000UL);
    }
}
