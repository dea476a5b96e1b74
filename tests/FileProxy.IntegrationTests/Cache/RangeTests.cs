using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class RangeTests(ITestOutputHelper output)
{
    private const int FileBytes = 6 * 1024 * 1024;
    private const int HeldAfterBytes = 2 * 1024 * 1024;

    [Theory]
    [InlineData(0UL, 1UL)]
    [InlineData(0UL, 100_000UL)]
    [InlineData(123_457UL, 65_536UL)]
    [InlineData(299_990UL, ProtocolLimits.ToEnd)]
    [InlineData(299_995UL, 1_000UL)]
    [InlineData(300_000UL, ProtocolLimits.ToEnd)]
    [InlineData(17UL, 0UL)]
    public async Task A_range_of_a_complete_entry_is_served_from_the_cache_byte_exact(ulong offset, ulong length)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(300_000, seed: 1);
        cluster.Root.Write("ranged.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "ranged.bin", deadline.Token);

        var part = await Fetch.GetAsync(client, "ranged.bin", deadline.Token, offset, length);

        var expected = Slice(content, offset, length);
        part.Head.Source.Should().Be(ResponseSource.CacheHit);
        part.Head.Offset.Should().Be((long)offset);
        part.Head.Length.Should().Be(expected.Length);
        part.Body.Should().Equal(expected);
    }

    [Fact]
    public async Task A_range_past_the_end_of_a_cached_file_is_not_satisfiable()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("short.bin", Fetch.RandomBytes(1_000, seed: 2));
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "short.bin", deadline.Token);

        var answer = await Fetch.GetAsync(client, "short.bin", deadline.Token, offset: 1_001);

        answer.Head.Status.Should().Be(StatusCode.RangeNotSatisfiable);
    }

    [Fact]
    public async Task A_range_inside_the_written_part_of_a_running_fill_streams_before_the_fill_ends()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        var content = Fetch.RandomBytes(FileBytes, seed: 3);
        cluster.Root.Write("growing.bin", content);
        var hold = origin.Hold("growing.bin", HeldAfterBytes);
        await using var whole = await StreamingGet.StartAsync(cluster.ProxyPort, "growing.bin", deadline.Token);
        await hold.Reached.WaitAsync(deadline.Token);

        await using var part = await StreamingGet.StartAsync(cluster.ProxyPort, "growing.bin", deadline.Token,
            offset: 1_000_000, length: 500_000);
        var firstRead = await part.ReadSomeAsync(deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        hold.Release();
        var body = await part.ReadToEndAsync(deadline.Token);

        firstRead.Should().BePositive();
        stats["fills_in_progress"].Should().Be(1, "the range's bytes must flow while the origin is held");
        part.Head.Source.Should().Be(ResponseSource.CacheCoalesced);
        part.Head.Length.Should().Be(500_000);
        body.Should().Equal(content.AsSpan(1_000_000, 500_000).ToArray());
        (await whole.ReadToEndAsync(deadline.Token)).Should().Equal(content);
    }

    [Fact]
    public async Task A_range_beyond_the_written_part_of_a_running_fill_waits_for_the_fill_and_is_byte_exact()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        var content = Fetch.RandomBytes(FileBytes, seed: 4);
        cluster.Root.Write("growing.bin", content);
        var hold = origin.Hold("growing.bin", HeldAfterBytes);
        await using var whole = await StreamingGet.StartAsync(cluster.ProxyPort, "growing.bin", deadline.Token);
        await hold.Reached.WaitAsync(deadline.Token);

        await using var tail = await StreamingGet.StartAsync(cluster.ProxyPort, "growing.bin", deadline.Token,
            offset: 4 * 1024 * 1024, length: 1024 * 1024);
        var reading = tail.ReadToEndAsync(deadline.Token);
        var doneWhileHeld = reading.IsCompleted;
        hold.Release();
        var body = await reading;

        tail.Head.Source.Should().Be(ResponseSource.CacheCoalesced);
        tail.Head.Length.Should().Be(1024 * 1024);
        doneWhileHeld.Should().BeFalse("those bytes had not reached the proxy yet");
        body.Should().Equal(content.AsSpan(4 * 1024 * 1024, 1024 * 1024).ToArray());
        (await whole.ReadToEndAsync(deadline.Token)).Should().Equal(content);
    }

    [Fact]
    public async Task A_range_ending_at_the_end_of_a_running_fill_gets_the_last_bytes()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        var content = Fetch.RandomBytes(FileBytes, seed: 5);
        cluster.Root.Write("growing.bin", content);
        var hold = origin.Hold("growing.bin", HeldAfterBytes);
        await using var whole = await StreamingGet.StartAsync(cluster.ProxyPort, "growing.bin", deadline.Token);
        await hold.Reached.WaitAsync(deadline.Token);

        await using var tail = await StreamingGet.StartAsync(cluster.ProxyPort, "growing.bin", deadline.Token,
            offset: FileBytes - 10, length: ProtocolLimits.ToEnd);
        hold.Release();

        (await tail.ReadToEndAsync(deadline.Token)).Should().Equal(content.AsSpan(FileBytes - 10).ToArray());
        (await whole.ReadToEndAsync(deadline.Token)).Should().Equal(content);
    }

    private static byte[] Slice(byte[] content, ulong offset, ulong length)
    {
        var start = (int)Math.Min(offset, (ulong)content.Length);
        var count = (int)Math.Min(length, (ulong)(content.Length - start));
        return content.AsSpan(start, count).ToArray();
    }
}
