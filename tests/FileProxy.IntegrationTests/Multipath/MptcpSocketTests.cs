using System.Net;
using System.Net.Sockets;
using FileProxy.Protocol.Native;
using FileProxy.Protocol.Transport;
using FileProxy.IntegrationTests.Infrastructure;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace FileProxy.IntegrationTests.Multipath;

/// <summary>
/// The socket factory on loopback: an MPTCP socket is really MPTCP (the kernel says protocol 262 and answers
/// SOL_MPTCP) and carries sendfile; where MPTCP is missing, the socket is TCP and one warning names the reason.
/// </summary>
[Collection(TestbedGroup.Name)]
public sealed class MptcpSocketTests
{
    [SkippableFact]
    public async Task An_mptcp_socket_is_really_mptcp_on_both_ends_and_carries_sendfile()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var listener = SocketSetup.Listen(new IPEndPoint(IPAddress.Loopback, 0), mptcp: true);
        SkipWithoutMptcp();
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var accepting = listener.AcceptAsync(deadline.Token);
        using var client = await SocketSetup.ConnectAsync("127.0.0.1", port, mptcp: true, deadline.Token);
        using var accepted = await accepting;
        using var files = new TempDirectory();
        var content = Fetch.RandomBytes(3_000_000, seed: 72);
        var path = files.Write("body.bin", content);

        using (var sender = new SocketSender(accepted))
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous))
        {
            await sender.SendFileAsync(file, 1000, content.Length - 1000, deadline.Token);
        }
        accepted.Shutdown(SocketShutdown.Send);
        var received = new MemoryStream();
        await new NetworkStream(client).CopyToAsync(received, deadline.Token);

        Mptcp.IsMptcpSocket(listener).Should().BeTrue("the listener was made with protocol 262");
        Mptcp.IsMptcpSocket(client).Should().BeTrue();
        Mptcp.ReadInfo(client).Should().NotBeNull("getsockopt(SOL_MPTCP, MPTCP_INFO) answers only on a connection that is MPTCP");
        Mptcp.ReadInfo(accepted).Should().NotBeNull();
        Mptcp.StatusOf(client, requested: true).Should().Be(new MptcpStatus(MptcpState.Active, 1));
        Mptcp.Subflows(client).Should().ContainSingle().Which.Remote.Should().Be(new IPEndPoint(IPAddress.Loopback, port));
        received.ToArray().Should().Equal(content[1000..]);
    }

    [SkippableFact]
    public void An_mptcp_socket_that_refuses_tcp_user_timeout_is_configured_all_the_same_with_one_debug_line()
    {
        using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var mptcp = SocketSetup.Listen(new IPEndPoint(IPAddress.Loopback, 0), mptcp: true);
        SkipWithoutMptcp();
        var sink = new ListSink();

        SocketSetup.TrySetUserTimeout(tcp).Should().BeTrue();
        var accepted = SocketSetup.TrySetUserTimeout(mptcp);
        Skip.If(accepted, "this kernel takes TCP_USER_TIMEOUT on MPTCP sockets");
        var configure = () => SocketSetup.Configure(mptcp, mptcp: true);
        SocketSetup.LogUserTimeoutRefused(mptcp, new LoggerConfiguration().MinimumLevel.Verbose().WriteTo.Sink(sink).CreateLogger());

        configure.Should().NotThrow();
        mptcp.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive).Should().Be(1, "keep-alive still applies");
        var line = sink.Events.Should().ContainSingle().Which;
        line.Level.Should().Be(LogEventLevel.Debug);
        line.RenderMessage().Should().Contain("TCP_USER_TIMEOUT is refused on \"MPTCP\" sockets");
    }

    [SkippableFact]
    public async Task An_mptcp_client_of_a_tcp_server_says_the_peer_fell_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var listener = SocketSetup.Listen(new IPEndPoint(IPAddress.Loopback, 0), mptcp: false);
        var accepting = listener.AcceptAsync(deadline.Token);
        using var client = await SocketSetup.ConnectAsync("127.0.0.1", ((IPEndPoint)listener.LocalEndPoint!).Port, mptcp: true, deadline.Token);
        using var accepted = await accepting;
        SkipWithoutMptcp();

        Mptcp.IsMptcpSocket(client).Should().BeTrue();
        Mptcp.StatusOf(client, requested: true).State.Should().Be(MptcpState.FellBack);
        Mptcp.StatusOf(client, requested: true).Describe().Should().Be("MPTCP requested, peer fell back to TCP");
    }

    [Theory]
    [InlineData(93, "EPROTONOSUPPORT")]
    [InlineData(92, "ENOPROTOOPT")]
    [InlineData(22, "EINVAL")]
    public void A_kernel_without_mptcp_gives_tcp_sockets_and_one_warning_naming_the_reason(int errno, string named)
    {
        var sink = new ListSink();
        var attempts = 0;
        var factory = new SocketFactory((_, _, _) =>
        {
            attempts++;
            return -errno;
        }, new LoggerConfiguration().WriteTo.Sink(sink).CreateLogger());

        using var first = factory.Create(AddressFamily.InterNetwork, mptcp: true);
        using var second = factory.Create(AddressFamily.InterNetworkV6, mptcp: true);

        first.ProtocolType.Should().Be(ProtocolType.Tcp);
        second.ProtocolType.Should().Be(ProtocolType.Tcp);
        attempts.Should().Be(1, "once MPTCP is known to be missing, later sockets do not try again");
        var warning = sink.Events.Should().ContainSingle().Which;
        warning.Level.Should().Be(LogEventLevel.Warning);
        warning.RenderMessage().Should().Contain(named).And.Contain("plain TCP");
        factory.UnavailableReason.Should().Contain(named);
        Mptcp.StatusOf(first, requested: true, factory).Should().Be(new MptcpStatus(MptcpState.Unavailable, 1, factory.UnavailableReason));
    }

    [Fact]
    public void Running_out_of_descriptors_is_an_error_not_a_silent_fallback()
    {
        var sink = new ListSink();
        var factory = new SocketFactory((_, _, _) => -24, new LoggerConfiguration().WriteTo.Sink(sink).CreateLogger());

        var act = () => factory.Create(AddressFamily.InterNetwork, mptcp: true);

        act.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.TooManyOpenSockets);
        sink.Events.Should().BeEmpty();
        factory.UnavailableReason.Should().BeNull();
    }

    [Fact]
    public void Plain_tcp_never_asks_for_mptcp()
    {
        var factory = new SocketFactory((_, _, _) => throw new InvalidOperationException("socket(2) called"), log: null);

        using var socket = factory.Create(AddressFamily.InterNetwork, mptcp: false);

        socket.ProtocolType.Should().Be(ProtocolType.Tcp);
        Mptcp.StatusOf(socket, requested: false).Describe().Should().BeNull();
    }

    [SkippableFact]
    public void The_real_factory_makes_a_socket_the_kernel_calls_mptcp()
    {
        var fd = Posix.OpenSocket(2, 1, SocketFactory.MptcpProtocol);
        Skip.If(fd < 0, $"socket(AF_INET, SOCK_STREAM, 262) failed with errno {-fd}: {SocketFactory.FallbackReason(-fd)}");
        using var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));

        Mptcp.IsMptcpSocket(socket).Should().BeTrue();
    }

    private static void SkipWithoutMptcp()
    {
        if (SocketFactory.Shared.UnavailableReason is { } reason)
        {
            throw new SkipException($"this kernel cannot make MPTCP sockets: {reason}");
        }
    }

    private sealed class ListSink : ILogEventSink
    {
        private readonly List<LogEvent> _events = [];

        public IReadOnlyList<LogEvent> Events
        {
            get
            {
                lock (_events)
                {
                    return [.. _events];
                }
            }
        }

        public void Emit(LogEvent logEvent)
        {
            lock (_events)
            {
                _events.Add(logEvent);
            }
        }
    }
}
