using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Integrity;

/// <summary>An origin that announces a digest its bytes do not have: the proxy must never pass that off as a
/// good response, whether the reader wants the whole file or a range of it.</summary>
public sealed class LyingOriginTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_whole_file_reader_gets_an_error_and_nothing_is_cached()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: source => new WrongDigestSource(source));
        cluster.Root.Write("lie.bin", Fetch.RandomBytes(3_000_000, seed: 7));
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var act = () => Fetch.GetAsync(client, "lie.bin", deadline.Token);

        await act.Should().ThrowAsync<UpstreamException>("the proxy must cut the body short when the digest fails");
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["entries"].Should().Be(0);
        cluster.FilesInCache().Should().BeEmpty();
    }

    [Fact]
    public async Task A_range_reader_gets_an_error_instead_of_unverified_bytes()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: source => new WrongDigestSource(source));
        cluster.Root.Write("lie.bin", Fetch.RandomBytes(3_000_000, seed: 8));
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var act = () => Fetch.GetAsync(client, "lie.bin", deadline.Token, offset: 1000, length: 5000);

        await act.Should().ThrowAsync<UpstreamException>("a range cannot be checked by the client, so the proxy must not complete it");
    }

    /// <summary>Passes everything through but flips a bit of every announced digest.</summary>
    [Fact]
    public async Task A_version_tag_with_a_newline_is_refused_and_never_reaches_the_cache()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output,
            wrapOrigin: source => new WrongDigestSource(source, file => file with { Version = "v1\nname /etc/shadow" }));
        cluster.Root.Write("tag.bin", Fetch.RandomBytes(10_000, seed: 8));
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var answer = await Fetch.GetAsync(client, "tag.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);

        answer.Head.Status.Should().Be(StatusCode.UpstreamUnavailable, "the origin broke the protocol");
        cluster.FilesInCache().Should().BeEmpty("no .meta may hold the tag's newline");
    }

    private sealed class WrongDigestSource(IFileSource inner, Func<FileMetadata, FileMetadata>? change = null) : IFileSource
    {
        public string Role => inner.Role;

        public IEnumerable<KeyValuePair<string, long>> Counters => inner.Counters;

        public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
        {
            var result = await inner.GetAsync(name, request, cancellationToken);
            return result.Head.IsOk ? result with { Head = result.Head with { File = Corrupt(result.Head.File!) } } : result;
        }

        public async ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken)
        {
            var head = await inner.StatAsync(name, cancellationToken);
            return head.IsOk ? head with { File = Corrupt(head.File!) } : head;
        }

        public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) => inner.PurgeAsync(name, cancellationToken);

        private FileMetadata Corrupt(FileMetadata file)
        {
            if (change is not null)
            {
                return change(file);
            }
            var bytes = file.Digest.Bytes.ToArray();
            bytes[0] ^= 1;
            return file with { Digest = new ContentDigest(bytes) };
        }
    }
}
