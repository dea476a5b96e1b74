using FileProxy.Protocol.Tests.Wire;
using FileProxy.Protocol.Transport;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Transport;

public sealed class FrameReaderTests
{
    private static readonly byte[] StatFrame = Frames.Request(new StatRequest("dir/file.txt"));
    private static readonly byte[] GetFrame = Frames.Request(new GetRequest("日本語/ファイル.bin", 10, 20, "v1"));
    private static readonly byte[] StatsFrame = Frames.Request(new StatsRequest());

    [Fact]
    public async Task ReadFrame_assembles_a_frame_arriving_one_byte_at_a_time()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        var firstByteCalls = 0;

        var read = reader.ReadFrameAsync(() => firstByteCalls++, deadline.Token).AsTask();
        for (var i = 0; i < GetFrame.Length; i++)
        {
            read.IsCompleted.Should().BeFalse("only {0} of {1} bytes were sent", i, GetFrame.Length);
            await pair.SendAsync(GetFrame.AsMemory(i, 1), deadline.Token);
        }
        var frame = await read;

        frame.Should().NotBeNull();
        frame!.Value.Header.Should().Be(Frames.HeaderOf(GetFrame));
        frame.Value.Payload.ToArray().Should().Equal(Frames.PayloadOf(GetFrame));
        firstByteCalls.Should().Be(1);
    }

    [Fact]
    public async Task ReadFrame_reads_pipelined_frames_from_one_write_in_order()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        byte[][] frames = [StatFrame, GetFrame, StatsFrame, StatFrame];

        await pair.SendAsync(frames.SelectMany(f => f).ToArray(), deadline.Token);
        pair.ClosePeer();

        foreach (var expected in frames)
        {
            var frame = await reader.ReadFrameAsync(null, deadline.Token);
            frame.Should().NotBeNull();
            frame!.Value.Header.Should().Be(Frames.HeaderOf(expected));
            frame.Value.Payload.ToArray().Should().Equal(Frames.PayloadOf(expected));
        }
        (await reader.ReadFrameAsync(null, deadline.Token)).Should().BeNull();
    }

    [Fact]
    public async Task ReadFrame_reads_many_pipelined_frames_that_overflow_a_small_buffer()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        // Payloads of 0..16 bytes through a reader sized for 16: frames straddle the end of its buffer all the time.
        var payloads = Enumerable.Range(0, 200).Select(i => Enumerable.Repeat((byte)i, i % 17).ToArray()).ToArray();
        using var reader = new FrameReader(pair.Local, maxPayload: 16);

        await pair.SendAsync(payloads.SelectMany(p => Frames.Raw(Opcode.Stat, p)).ToArray(), deadline.Token);
        pair.ClosePeer();

        foreach (var expected in payloads)
        {
            var frame = await reader.ReadFrameAsync(null, deadline.Token);
            frame.Should().NotBeNull();
            frame!.Value.Payload.ToArray().Should().Equal(expected);
        }
        (await reader.ReadFrameAsync(null, deadline.Token)).Should().BeNull();
    }

    [Fact]
    public async Task ReadFrame_reads_frames_of_MaxFrameLength_back_to_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        var first = Frames.Raw(Opcode.StatsResponse, Enumerable.Range(0, ProtocolLimits.MaxFrameLength).Select(i => (byte)i).ToArray());
        var second = Frames.Raw(Opcode.StatsResponse, new byte[ProtocolLimits.MaxFrameLength]);

        var send = pair.SendAsync((byte[])[.. first, .. second, .. StatFrame], deadline.Token);
        var frames = new List<byte[]>();
        for (var i = 0; i < 3; i++)
        {
            frames.Add((await reader.ReadFrameAsync(null, deadline.Token))!.Value.Payload.ToArray());
        }
        await send;

        frames[0].Should().Equal(Frames.PayloadOf(first));
        frames[1].Should().Equal(Frames.PayloadOf(second));
        frames[2].Should().Equal(Frames.PayloadOf(StatFrame));
    }

    [Fact]
    public async Task ReadFrame_returns_null_on_clean_close()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        var firstByteCalls = 0;

        pair.ClosePeer();

        (await reader.ReadFrameAsync(() => firstByteCalls++, deadline.Token)).Should().BeNull();
        firstByteCalls.Should().Be(0, "no frame started");
    }

    [Fact]
    public async Task ReadFrame_returns_null_on_clean_close_after_a_frame()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);

        await pair.SendAsync(StatsFrame, deadline.Token);
        pair.ClosePeer();

        (await reader.ReadFrameAsync(null, deadline.Token)).Should().NotBeNull();
        (await reader.ReadFrameAsync(null, deadline.Token)).Should().BeNull();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(12)]
    public async Task ReadFrame_throws_EndOfStreamException_when_the_peer_closes_mid_frame(int sent)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);

        await pair.SendAsync(StatFrame.AsMemory(0, sent), deadline.Token);
        pair.ClosePeer();

        var act = async () => await reader.ReadFrameAsync(null, deadline.Token);
        await act.Should().ThrowAsync<EndOfStreamException>();
    }

    [Fact]
    public async Task ReadFrame_throws_EndOfStreamException_when_the_peer_closes_mid_second_frame()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);

        await pair.SendAsync((byte[])[.. StatFrame, .. StatFrame.AsSpan(0, 10)], deadline.Token);
        pair.ClosePeer();

        (await reader.ReadFrameAsync(null, deadline.Token)).Should().NotBeNull();
        var act = async () => await reader.ReadFrameAsync(null, deadline.Token);
        await act.Should().ThrowAsync<EndOfStreamException>();
    }

    [Fact]
    public async Task ReadFrame_throws_ProtocolException_for_a_wrong_magic()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);

        await pair.SendAsync("GET / HTTP/1.1\r\n\r\n"u8.ToArray(), deadline.Token);

        var act = async () => await reader.ReadFrameAsync(null, deadline.Token);
        await act.Should().ThrowAsync<ProtocolException>().WithMessage("*magic*");
    }

    [Fact]
    public async Task ReadFrame_throws_ProtocolException_for_a_payload_over_the_reader_limit()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, maxPayload: 100);

        await pair.SendAsync(Frames.Header(ProtocolLimits.Magic, ProtocolLimits.Version, (byte)Opcode.Get, 101), deadline.Token);

        var act = async () => await reader.ReadFrameAsync(null, deadline.Token);
        await act.Should().ThrowAsync<ProtocolException>().WithMessage("*101 bytes exceeds this peer's limit of 100");
    }

    [Fact]
    public async Task ReadFrame_is_cancelled_by_its_token_while_waiting()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);

        await pair.SendAsync(StatFrame.AsMemory(0, 5), deadline.Token);
        var read = reader.ReadFrameAsync(null, cancel.Token).AsTask();
        await cancel.CancelAsync();

        var act = async () => await read;
        await act.Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task ReadBody_returns_buffered_bytes_before_reading_the_socket()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        var buffered = "buffered with the frame"u8.ToArray();
        var later = "sent after the frame was read"u8.ToArray();

        await pair.SendAsync((byte[])[.. StatFrame, .. buffered], deadline.Token);
        await pair.WaitUntilBufferedAsync(StatFrame.Length + buffered.Length, deadline.Token);
        (await reader.ReadFrameAsync(null, deadline.Token)).Should().NotBeNull();
        reader.Buffered.Should().Be(buffered.Length, "the frame's receive took every byte that was waiting");
        await pair.SendAsync(later, deadline.Token);
        var destination = new byte[1000];

        var first = await reader.ReadBodyAsync(destination, deadline.Token);
        destination[..first].Should().Equal(buffered, "buffered bytes come first and alone");
        reader.Buffered.Should().Be(0);
        var second = await ReadAtLeastAsync(reader, destination, later.Length, deadline.Token);
        destination[..second].Should().Equal(later);
    }

    [Fact]
    public async Task ReadBody_returns_at_most_the_destination_length_from_the_buffer()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        var body = "0123456789"u8.ToArray();

        await pair.SendAsync((byte[])[.. GetFrame, .. body], deadline.Token);
        await pair.WaitUntilBufferedAsync(GetFrame.Length + body.Length, deadline.Token);
        (await reader.ReadFrameAsync(null, deadline.Token)).Should().NotBeNull();
        var destination = new byte[4];

        (await reader.ReadBodyAsync(destination, deadline.Token)).Should().Be(4);
        destination.Should().Equal("0123"u8.ToArray());
        reader.Buffered.Should().Be(6);
        (await reader.ReadBodyAsync(destination, deadline.Token)).Should().Be(4);
        destination.Should().Equal("4567"u8.ToArray());
    }

    [Fact]
    public async Task ReadBody_then_ReadFrame_continues_with_the_next_frame()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);
        var body = new byte[300];
        Random.Shared.NextBytes(body);

        await pair.SendAsync((byte[])[.. GetFrame, .. body, .. StatFrame], deadline.Token);
        pair.ClosePeer();

        (await reader.ReadFrameAsync(null, deadline.Token)).Should().NotBeNull();
        var received = new byte[body.Length];
        var total = 0;
        while (total < body.Length)
        {
            var read = await reader.ReadBodyAsync(received.AsMemory(total), deadline.Token);
            read.Should().BePositive();
            total += read;
        }
        var next = await reader.ReadFrameAsync(null, deadline.Token);

        received.Should().Equal(body);
        next!.Value.Payload.ToArray().Should().Equal(Frames.PayloadOf(StatFrame));
    }

    [Fact]
    public async Task ReadBody_returns_0_when_the_peer_closed()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        using var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);

        pair.ClosePeer();

        (await reader.ReadBodyAsync(new byte[10], deadline.Token)).Should().Be(0);
    }

    [Fact]
    public async Task ReadFrame_after_Dispose_throws_ObjectDisposedException()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var pair = await SocketPair.ConnectAsync(deadline.Token);
        var reader = new FrameReader(pair.Local, ProtocolLimits.MaxFrameLength);

        reader.Dispose();
        reader.Dispose();

        var act = async () => await reader.ReadFrameAsync(null, deadline.Token);
        await act.Should().ThrowAsync<ObjectDisposedException>();
    }

    private static async Task<int> ReadAtLeastAsync(FrameReader reader, byte[] destination, int count, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < count)
        {
            var read = await reader.ReadBodyAsync(destination.AsMemory(total), cancellationToken);
            read.Should().BePositive("the peer is still sending");
            total += read;
        }
        return total;
    }
}
