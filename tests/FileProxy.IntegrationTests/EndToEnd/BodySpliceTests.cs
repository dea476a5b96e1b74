using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FluentAssertions;
using Microsoft.Win32.SafeHandles;
using Xunit;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>The proxy's fill path: a body spliced from the socket into the cache file inside the kernel, hashed where
/// it landed.</summary>
public sealed class BodySpliceTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1_000)] // likely whole in the frame reader's buffer, read with the head
    [InlineData(300_000)]
    [InlineData(5 * 1024 * 1024 + 12_345)] // many pipes' worth, and a ragged end
    public async Task A_body_lands_whole_at_the_offset_hashed_with_each_length_reported_once_and_the_connection_stays_usable(int length)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(length, seed: 94);
        cluster.Root.Write("body.bin", content);
        cluster.Root.Write("next.bin", Fetch.RandomBytes(70_000, seed: 95));
        using var scratch = new TempDirectory("fileproxy-splice");
        var path = Path.Join(scratch.Path, "out.bin");
        const int offset = 777;
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        await using var response = await client.GetAsync(new GetRequest("body.bin"), deadline.Token);
        using var hash = new ContentHasher();
        var reported = new List<long>();
        var splicedBefore = BodyCopier.SplicedBytes;

        (long Bytes, CopyOutcome Outcome) result;
        using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            result = await BodyCopier.TrySpliceToFileAsync(response, file, offset, hash, reported.Add, deadline.Token);
        }

        result.Outcome.Result.Should().Be(CopyResult.Success, result.Outcome.Reason);
        result.Bytes.Should().Be(length);
        (await File.ReadAllBytesAsync(path, deadline.Token)).AsSpan(offset).SequenceEqual(content).Should().BeTrue("the body lands byte for byte after the offset");
        hash.Finish().Should().Be(response.Head.File!.Digest);
        reported.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        reported[^1].Should().Be(offset + length);
        if (length > 1024 * 1024)
        {
            // Other tests splice too, so only a lower bound: at most the frame reader's buffer went through the process.
            (BodyCopier.SplicedBytes - splicedBefore).Should().BeGreaterThanOrEqualTo(length - ReaderBufferBytes,
                "the body went from the socket to the file in the kernel, not through a copy");
        }
        client.IsReusable.Should().BeTrue("the whole body was taken off the connection");
        await using var next = await client.GetAsync(new GetRequest("next.bin"), deadline.Token);
        var buffer = new MemoryStream();
        await next.CopyToAsync(buffer, deadline.Token);
        buffer.ToArray().Should().Equal(Fetch.RandomBytes(70_000, seed: 95), "the next response starts where the spliced body ended");
    }

    [Fact]
    public async Task A_body_cut_by_the_upstream_ends_as_the_upstream_s_failure_with_what_arrived_in_the_file()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var faults = new OriginFaults();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: faults.Wrap);
        var content = Fetch.RandomBytes(6 * 1024 * 1024, seed: 96);
        cluster.Root.Write("cut.bin", content);
        faults.CutBodiesAfter(3 * 1024 * 1024 + 5);
        using var scratch = new TempDirectory("fileproxy-splice");
        var path = Path.Join(scratch.Path, "out.bin");
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        await using var response = await client.GetAsync(new GetRequest("cut.bin"), deadline.Token);
        var reported = new List<long>();
        using var hash = new ContentHasher();

        (long Bytes, CopyOutcome Outcome) result;
        using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            result = await BodyCopier.TrySpliceToFileAsync(response, file, 0, hash, reported.Add, deadline.Token);
        }

        result.Outcome.Result.Should().Be(CopyResult.UpstreamReadFailed);
        result.Outcome.Error.Should().BeOfType<UpstreamException>();
        result.Bytes.Should().BeLessThanOrEqualTo(3 * 1024 * 1024 + 5);
        var written = await File.ReadAllBytesAsync(path, deadline.Token);
        written.Length.Should().Be((int)result.Bytes, "what arrived before the cut is in the file, and nothing else");
        written.AsSpan().SequenceEqual(content.AsSpan(0, written.Length)).Should().BeTrue();
        using var expected = new ContentHasher();
        expected.Append(written);
        hash.Finish().Should().Be(expected.Finish(), "the file and the hash agree on what arrived, so a resume can go on from there");
        if (result.Bytes > 0)
        {
            reported[^1].Should().Be(result.Bytes);
        }
        client.IsReusable.Should().BeFalse("the connection lost its place in the stream");
        deadline.IsCancellationRequested.Should().BeFalse("the cut ends the copy, not the deadline");
    }

    [Fact]
    public async Task A_file_open_only_for_writing_cannot_be_hashed_where_it_lands_so_the_body_is_copied_through_the_process()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(3 * 1024 * 1024 + 1, seed: 97);
        cluster.Root.Write("w.bin", content);
        using var scratch = new TempDirectory("fileproxy-splice");
        var path = Path.Join(scratch.Path, "out.bin");
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        await using var response = await client.GetAsync(new GetRequest("w.bin"), deadline.Token);
        using var hash = new ContentHasher();

        (long Bytes, CopyOutcome Outcome) result;
        using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            result = await BodyCopier.TrySpliceToFileAsync(response, file, 0, hash, null, deadline.Token);
        }

        result.Outcome.Result.Should().Be(CopyResult.Success, result.Outcome.Reason);
        (await File.ReadAllBytesAsync(path, deadline.Token)).Should().Equal(content);
        hash.Finish().Should().Be(response.Head.File!.Digest);
    }

    [Fact]
    public async Task A_file_that_refuses_writes_ends_the_copy_as_the_file_s_failure_instead_of_hanging()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("r.bin", Fetch.RandomBytes(4 * 1024 * 1024, seed: 98));
        using var scratch = new TempDirectory("fileproxy-splice");
        var path = Path.Join(scratch.Path, "read-only.bin");
        await File.WriteAllBytesAsync(path, [], deadline.Token);
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);
        await using var response = await client.GetAsync(new GetRequest("r.bin"), deadline.Token);
        using SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);

        var result = await BodyCopier.TrySpliceToFileAsync(response, file, 0, new ContentHasher(), null, deadline.Token);

        result.Outcome.Result.Should().Be(CopyResult.DownstreamWriteFailed);
        deadline.IsCancellationRequested.Should().BeFalse("the failure ends the copy, not the deadline");
    }

    /// <summary>The most body bytes the frame reader can take off the socket with a head: its buffer, rented for
    /// the largest frame (64 KiB and a header, which the pool rounds up to 128 KiB).</summary>
    private const int ReaderBufferBytes = 128 * 1024;
}
