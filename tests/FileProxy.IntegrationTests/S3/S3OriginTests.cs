using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.S3;

/// <summary>The origin over a bucket of a real Ceph RGW (scripts/ceph.sh): bytes, ranges, names, digests kept across
/// restarts, an object replaced mid-request, and a proxy in front. Skipped, with the reason, where Ceph cannot run.</summary>
[Collection("ceph")]
public sealed class S3OriginTests(CephFixture ceph, ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [SkippableTheory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4_096)]
    [InlineData(12 * 1024 * 1024 + 7)]
    public async Task Get_returns_the_object_byte_exact_with_its_digest(int size)
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        var content = Fetch.RandomBytes(size, seed: size);
        await origin.PutAsync("dir/object.bin", content, deadline.Token);
        await using var client = await origin.ConnectAsync(deadline.Token);

        var result = await Fetch.GetAsync(client, "dir/object.bin", deadline.Token);

        result.Head.Status.Should().Be(StatusCode.Ok, result.Head.Message);
        result.Body.Should().Equal(content);
        result.Head.File!.Size.Should().Be(size);
        result.Head.File.Digest.Should().Be(ContentDigest.Of(content));
    }

    [SkippableTheory]
    [InlineData(0, 100)]
    [InlineData(1_000_000, 3_000_000)]
    [InlineData(5_000_000, ProtocolLimits.ToEnd)]
    [InlineData(5_242_880, 10)]
    public async Task A_range_is_answered_with_exactly_those_bytes(ulong offset, ulong length)
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        var content = Fetch.RandomBytes(5 * 1024 * 1024, seed: 5);
        await origin.PutAsync("object.bin", content, deadline.Token);
        await using var client = await origin.ConnectAsync(deadline.Token);

        var result = await Fetch.GetAsync(client, "object.bin", deadline.Token, offset, length);

        var end = (int)Math.Min((ulong)content.Length, offset + Math.Min(length, (ulong)content.Length));
        result.Head.Status.Should().Be(StatusCode.Ok, result.Head.Message);
        result.Head.Offset.Should().Be((long)offset);
        result.Body.Should().Equal(content[(int)offset..end]);
        result.Head.File!.Digest.Should().Be(ContentDigest.Of(content), "a range announces the whole object's digest");
    }

    [SkippableFact]
    public async Task A_range_past_the_end_is_not_satisfiable()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        await origin.PutAsync("object.bin", Fetch.RandomBytes(1_000, seed: 1), deadline.Token);
        await using var client = await origin.ConnectAsync(deadline.Token);

        var result = await Fetch.GetAsync(client, "object.bin", deadline.Token, offset: 1_001, length: 10);

        result.Head.Status.Should().Be(StatusCode.RangeNotSatisfiable);
    }

    [SkippableTheory]
    [InlineData("missing.bin")]
    [InlineData("dir")]
    [InlineData("dir/sub")]
    public async Task A_missing_object_or_a_key_prefix_is_NotFound(string name)
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        await origin.PutAsync("dir/sub/object.bin", [1, 2, 3], deadline.Token);
        await using var client = await origin.ConnectAsync(deadline.Token);

        var get = await Fetch.GetAsync(client, name, deadline.Token);
        var stat = await client.StatAsync(name, deadline.Token);

        get.Head.Status.Should().Be(StatusCode.NotFound);
        stat.Status.Should().Be(StatusCode.NotFound);
    }

    [SkippableTheory]
    [InlineData("../public/a.txt")]
    [InlineData("/secret.txt")]
    [InlineData("a//b")]
    [InlineData("./a.txt")]
    [InlineData("a\\b")]
    [InlineData("a.txt\0")]
    public async Task Names_follow_the_same_rules_as_a_directory_and_stay_under_the_prefix(string name)
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token, prefix: "public");
        await origin.PutAsync("public/a.txt", [1], deadline.Token);
        await origin.PutAsync("secret.txt", [2], deadline.Token);
        await using var client = await origin.ConnectAsync(deadline.Token);

        var refused = await Fetch.GetAsync(client, name, deadline.Token);
        var outside = await Fetch.GetAsync(client, "secret.txt", deadline.Token);
        var inside = await Fetch.GetAsync(client, "a.txt", deadline.Token);

        refused.Head.Status.Should().Be(StatusCode.BadRequest);
        outside.Head.Status.Should().Be(StatusCode.NotFound, "only objects under the prefix are served");
        inside.Body.Should().Equal([(byte)1]);
    }

    [SkippableFact]
    public async Task The_digest_is_computed_once_and_kept_across_a_restart()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        var content = Fetch.RandomBytes(3 * 1024 * 1024, seed: 9);
        await origin.PutAsync("kept.bin", content, deadline.Token);
        await using (var client = await origin.ConnectAsync(deadline.Token))
        {
            (await Fetch.GetAsync(client, "kept.bin", deadline.Token)).Body.Should().Equal(content);
            (await Fetch.GetAsync(client, "kept.bin", deadline.Token)).Body.Should().Equal(content);
        }
        origin.Counter("digests_computed").Should().Be(1, "a second request finds the digest of the same version");

        await origin.StopAsync();
        origin.Start();
        await using var again = await origin.ConnectAsync(deadline.Token);
        var result = await Fetch.GetAsync(again, "kept.bin", deadline.Token);

        result.Body.Should().Equal(content);
        result.Head.File!.Digest.Should().Be(ContentDigest.Of(content));
        origin.Counter("digests_computed").Should().Be(0, "the digest index survives the restart");
        origin.Counter("digests_known").Should().Be(1);
    }

    [SkippableFact]
    public async Task A_replaced_object_gets_a_new_version_and_digest()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        var first = Fetch.RandomBytes(100_000, seed: 1);
        var second = Fetch.RandomBytes(100_000, seed: 2);
        await origin.PutAsync("object.bin", first, deadline.Token);
        await using var client = await origin.ConnectAsync(deadline.Token);
        var before = await Fetch.GetAsync(client, "object.bin", deadline.Token);

        await origin.PutAsync("object.bin", second, deadline.Token);
        var after = await Fetch.GetAsync(client, "object.bin", deadline.Token);

        after.Body.Should().Equal(second);
        after.Head.File!.Version.Should().NotBe(before.Head.File!.Version);
        after.Head.File.Digest.Should().Be(ContentDigest.Of(second));
    }

    [SkippableFact]
    public async Task An_object_replaced_between_digest_and_body_is_an_error_never_mixed_bytes()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        var first = Fetch.RandomBytes(2 * 1024 * 1024, seed: 1);
        var second = Fetch.RandomBytes(2 * 1024 * 1024, seed: 2);
        await origin.PutAsync("object.bin", first, deadline.Token);
        var replaced = 0;
        origin.Source.BeforeBodyRead = async (_, cancellationToken) =>
        {
            if (Interlocked.Exchange(ref replaced, 1) == 0)
            {
                await origin.PutAsync("object.bin", second, cancellationToken);
            }
        };
        await using var client = await origin.ConnectAsync(deadline.Token);

        var during = await Fetch.GetAsync(client, "object.bin", deadline.Token);
        var next = await Fetch.GetAsync(client, "object.bin", deadline.Token);

        during.Head.Status.Should().Be(StatusCode.Busy, "the digest announced belongs to the first version");
        during.Body.Should().BeEmpty();
        origin.Counter("objects_changed_while_read").Should().Be(1);
        next.Head.Status.Should().Be(StatusCode.Ok, "the connection serves on, and the next request sees the new version");
        next.Body.Should().Equal(second);
        next.Head.File!.Digest.Should().Be(ContentDigest.Of(second));
    }

    [SkippableFact]
    public async Task A_proxy_in_front_serves_the_object_byte_exact_and_then_from_its_cache()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        origin.StartProxy();
        var content = Fetch.RandomBytes(6 * 1024 * 1024 + 3, seed: 6);
        await origin.PutAsync("through/proxy.bin", content, deadline.Token);
        await using var client = await origin.ConnectProxyAsync(deadline.Token);

        var miss = await Fetch.GetAsync(client, "through/proxy.bin", deadline.Token);
        var hit = await Fetch.GetAsync(client, "through/proxy.bin", deadline.Token);
        var range = await Fetch.GetAsync(client, "through/proxy.bin", deadline.Token, offset: 1_000_000, length: 1_000);

        miss.Body.Should().Equal(content);
        miss.Head.Source.Should().Be(ResponseSource.CacheMiss);
        hit.Body.Should().Equal(content);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        range.Body.Should().Equal(content[1_000_000..1_001_000]);
        origin.Counter("digests_computed").Should().Be(1);
    }
}
