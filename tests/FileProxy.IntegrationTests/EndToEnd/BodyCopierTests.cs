using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>The body copy the client's download and the proxy's fill share: slices received, hashed and written in
/// order, by one drainer (the proxy's ring) or inline (the client's one slice).</summary>
public sealed class BodyCopierTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(BodyCopier.Slices, BodyCopier.SliceBytes)] // the proxy's fill
    [InlineData(4, 128 * 1024)] // a ring of small slices: the drainer falls behind and the receiver waits for room
    [InlineData(1, 512 * 1024)] // the client's download: inline, no drainer
    [InlineData(1, 100_000)] // inline, with slices that do not divide the body
    public async Task A_body_of_many_slices_lands_whole_at_the_offset_hashed_in_order_with_each_length_reported_once(int slices, int sliceBytes)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        // Many slices and a ragged end: every slice boundary and the last partial one are crossed.
        var content = Fetch.RandomBytes(BodyCopier.SliceBytes * BodyCopier.Slices * 3 + 12_345, seed: 91);
        cluster.Root.Write("many.bin", content);
        using var scratch = new TempDirectory("fileproxy-copier");
        var path = Path.Join(scratch.Path, "out.bin");
        const int offset = 777;
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        await using var response = await client.GetAsync(new GetRequest("many.bin"), deadline.Token);
        using var hash = new ContentHasher();
        var reported = new List<long>();

        long copied;
        using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            copied = await BodyCopier.CopyToFileAsync(response, file, offset, hash, reported.Add, slices, sliceBytes, deadline.Token);
        }

        copied.Should().Be(content.Length);
        var written = await File.ReadAllBytesAsync(path, deadline.Token);
        written.AsSpan(offset).SequenceEqual(content).Should().BeTrue("the body lands byte for byte after the offset");
        hash.Finish().Should().Be(response.Head.File!.Digest);
        reported.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        reported[^1].Should().Be(offset + content.Length);
    }

    [Fact]
    public async Task The_ring_reports_its_first_bytes_before_a_whole_slice_is_in()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(BodyCopier.SliceBytes * 3, seed: 93);
        cluster.Root.Write("first.bin", content);
        using var scratch = new TempDirectory("fileproxy-copier");
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        await using var response = await client.GetAsync(new GetRequest("first.bin"), deadline.Token);
        // The whole body is on its way at once, so a receiver that filled its slice first would report 512 KiB.
        await response.WaitForBytesAsync(deadline.Token);
        var reported = new List<long>();

        using (var file = File.OpenHandle(Path.Join(scratch.Path, "out.bin"), FileMode.CreateNew, FileAccess.Write))
        {
            await BodyCopier.CopyToFileAsync(response, file, 0, null, reported.Add, deadline.Token);
        }

        reported[0].Should().BeInRange(1, BodyCopier.FirstSliceBytes, "a cache fill's readers get the first bytes that are in, not a whole slice");
        reported[^1].Should().Be(content.Length);
    }

    [Theory]
    [InlineData(BodyCopier.Slices, BodyCopier.SliceBytes)]
    [InlineData(1, 512 * 1024)]
    public async Task A_failed_write_ends_the_copy_with_that_error_instead_of_hanging(int slices, int sliceBytes)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(BodyCopier.SliceBytes * BodyCopier.Slices * 4, seed: 92);
        cluster.Root.Write("big.bin", content);
        using var scratch = new TempDirectory("fileproxy-copier");
        var path = Path.Join(scratch.Path, "read-only.bin");
        await File.WriteAllBytesAsync(path, [], deadline.Token);
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        await using var response = await client.GetAsync(new GetRequest("big.bin"), deadline.Token);
        // A descriptor opened for reading: every write to it fails (EBADF).
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);

        var copy = () => BodyCopier.CopyToFileAsync(response, file, 0, null, null, slices, sliceBytes, deadline.Token);

        await copy.Should().ThrowAsync<Exception>().Where(e => e is IOException || e is UnauthorizedAccessException);
        deadline.IsCancellationRequested.Should().BeFalse("the failure ends the copy, not the deadline");
    }
}
