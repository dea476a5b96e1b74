using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>Range GETs (offset, length) and if-version, answered the same way by the origin and by the proxy
/// (on a miss, from the fill, and on a hit, from the cache).</summary>
public sealed class RangeTests(ITestOutputHelper output)
{
    private const int Size = 100_000;
    private const ulong ToEnd = ProtocolLimits.ToEnd;

    public static TheoryData<Peer, ulong, ulong, int> Ranges()
    {
        var cases = new TheoryData<Peer, ulong, ulong, int>();
        foreach (var peer in new[] { Peer.Origin, Peer.Proxy })
        {
            cases.Add(peer, 0, 1, 1);
            cases.Add(peer, 0, ToEnd, Size);
            cases.Add(peer, 0, Size, Size);
            cases.Add(peer, 1_234, 5_678, 5_678);
            cases.Add(peer, 70_000, 30_000, 30_000);
            cases.Add(peer, Size - 1, ToEnd, 1);
            cases.Add(peer, 50_000, 10_000_000, 50_000);
            cases.Add(peer, 0, 0, 0);
            cases.Add(peer, 4_321, 0, 0);
            cases.Add(peer, Size, ToEnd, 0);
            cases.Add(peer, Size, 10, 0);
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(Ranges))]
    public async Task A_range_get_returns_exactly_the_requested_slice(Peer peer, ulong offset, ulong length, int expectedLength)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 15);
        cluster.Root.Write("ranged.bin", content);
        var expected = content.AsSpan((int)offset, expectedLength).ToArray();
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var first = await Fetch.GetAsync(client, "ranged.bin", deadline.Token, offset, length);
        await cluster.WaitForFillsAsync(deadline.Token);
        var second = await Fetch.GetAsync(client, "ranged.bin", deadline.Token, offset, length);

        foreach (var result in new[] { first, second })
        {
            result.Head.Status.Should().Be(StatusCode.Ok, result.Head.Message);
            result.Head.Offset.Should().Be((long)offset);
            result.Head.Length.Should().Be(expectedLength);
            result.Head.File!.Size.Should().Be(Size);
            result.Head.File.Digest.Should().Be(ContentDigest.Of(content), "the digest is the whole file's");
            result.Body.Should().Equal(expected);
        }
        if (peer == Peer.Proxy)
        {
            first.Head.Source.Should().Be(ResponseSource.CacheMiss);
            second.Head.Source.Should().Be(ResponseSource.CacheHit);
        }
    }

    [Theory]
    [InlineData(Peer.Origin, Size + 1UL)]
    [InlineData(Peer.Origin, ulong.MaxValue)]
    [InlineData(Peer.Proxy, Size + 1UL)]
    [InlineData(Peer.Proxy, ulong.MaxValue)]
    public async Task An_offset_past_the_end_is_RangeNotSatisfiable_and_the_connection_goes_on(Peer peer, ulong offset)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 16);
        cluster.Root.Write("ranged.bin", content);
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var first = await Fetch.GetAsync(client, "ranged.bin", deadline.Token, offset);
        var whole = await Fetch.GetAsync(client, "ranged.bin", deadline.Token);
        var second = await Fetch.GetAsync(client, "ranged.bin", deadline.Token, offset);

        first.Head.Status.Should().Be(StatusCode.RangeNotSatisfiable);
        second.Head.Status.Should().Be(StatusCode.RangeNotSatisfiable, "a cached file answers the same way");
        first.Body.Should().BeEmpty();
        whole.Body.Should().Equal(content);
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task A_get_for_another_version_is_VersionMismatch_and_for_the_current_one_succeeds(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(Size, seed: 17);
        cluster.Root.Write("versioned.bin", content);
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);
        var version = (await client.StatAsync("versioned.bin", deadline.Token)).File!.Version;

        var onMiss = await GetVersionAsync(client, "versioned.bin", version + "-old", deadline.Token);
        var matching = await GetVersionAsync(client, "versioned.bin", version, deadline.Token);
        var onHit = await GetVersionAsync(client, "versioned.bin", "not-a-version", deadline.Token);

        onMiss.Head.Status.Should().Be(StatusCode.VersionMismatch);
        onMiss.Head.Message.Should().Contain(version, "the answer names the current version");
        onHit.Head.Status.Should().Be(StatusCode.VersionMismatch);
        matching.Head.Status.Should().Be(StatusCode.Ok, matching.Head.Message);
        matching.Body.Should().Equal(content);
    }

    [Fact]
    public async Task After_the_file_changes_at_the_origin_the_old_version_is_VersionMismatch()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("changing.bin", Fetch.RandomBytes(1_000, seed: 18));
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        var before = (await client.StatAsync("changing.bin", deadline.Token)).File!.Version;

        var replacement = Fetch.RandomBytes(2_000, seed: 19);
        cluster.Root.Write("changing.bin", replacement);
        var old = await GetVersionAsync(client, "changing.bin", before, deadline.Token);
        var current = await Fetch.GetAsync(client, "changing.bin", deadline.Token);

        old.Head.Status.Should().Be(StatusCode.VersionMismatch);
        current.Head.File!.Version.Should().NotBe(before);
        current.Body.Should().Equal(replacement);
    }

    private static async Task<Fetch.Result> GetVersionAsync(FileClient client, string name, string version, CancellationToken cancellationToken)
    {
        await using var response = await client.GetAsync(new GetRequest(name, IfVersion: version), cancellationToken);
        using var body = new MemoryStream();
        await response.CopyToAsync(body, cancellationToken);
        return new Fetch.Result(response.Head, body.ToArray());
    }
}
