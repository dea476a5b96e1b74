using System.Text;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>Whatever the content and whatever the (legal) name, the proxy hands out exactly the origin's bytes:
/// first from a fill (miss), then from its cache (hit).</summary>
public sealed class ContentRoundTripTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(65_535)]
    [InlineData(65_536)]
    [InlineData(65_537)]
    [InlineData(10 * 1024 * 1024)]
    public async Task A_file_of_any_size_arrives_byte_exact_on_a_miss_and_on_a_hit(int size)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(size, seed: size);
        cluster.Root.Write("sized.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var miss = await Fetch.GetAsync(client, "sized.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var hit = await Fetch.GetAsync(client, "sized.bin", deadline.Token);

        miss.Head.Source.Should().Be(ResponseSource.CacheMiss);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        miss.Body.Should().Equal(content);
        hit.Body.Should().Equal(content);
        hit.Head.File!.Size.Should().Be(size);
        hit.Head.File.Digest.Should().Be(ContentDigest.Of(content));
    }

    [Fact]
    public async Task Text_with_runs_of_spaces_tabs_and_CRLF_is_not_altered()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var text = new StringBuilder();
        for (var line = 0; line < 2_000; line++)
        {
            text.Append("word").Append(' ', line % 7).Append('\t', line % 3).Append("  \t \r\n");
            if (line % 10 == 0)
            {
                text.Append("\r\n\r\n\n\r   \t\t\t   \r\n");
            }
        }
        var content = Encoding.UTF8.GetBytes(text.ToString());
        cluster.Root.Write("whitespace.txt", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var miss = await Fetch.GetAsync(client, "whitespace.txt", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var hit = await Fetch.GetAsync(client, "whitespace.txt", deadline.Token);

        miss.Body.Should().Equal(content);
        hit.Body.Should().Equal(content);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
    }

    [Theory]
    [InlineData("name with spaces.txt")]
    [InlineData("  leading and trailing spaces  ")]
    [InlineData("résumé naïve café.txt")]
    [InlineData("日本語のファイル.bin")]
    [InlineData("Ελληνικά/αρχείο.txt")]
    [InlineData("emoji 😀 file")]
    [InlineData("sub/dir/deep/file.bin")]
    [InlineData("dir with space/ünïcödé ñame.dat")]
    public async Task Names_with_spaces_non_ASCII_letters_and_directories_are_served_and_cached(string name)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(70_000, seed: name.Length);
        cluster.Root.Write(name, content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var miss = await Fetch.GetAsync(client, name, deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var hit = await Fetch.GetAsync(client, name, deadline.Token);

        miss.Head.Status.Should().Be(StatusCode.Ok, miss.Head.Message);
        miss.Head.Source.Should().Be(ResponseSource.CacheMiss);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        miss.Body.Should().Equal(content);
        hit.Body.Should().Equal(content);
    }

    [Fact]
    public async Task Files_of_the_same_name_in_different_directories_stay_distinct()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var top = Fetch.RandomBytes(5_000, seed: 1);
        var nested = Fetch.RandomBytes(6_000, seed: 2);
        cluster.Root.Write("data.bin", top);
        cluster.Root.Write("sub/data.bin", nested);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var nestedMiss = await Fetch.GetAsync(client, "sub/data.bin", deadline.Token);
        var topMiss = await Fetch.GetAsync(client, "data.bin", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        var nestedHit = await Fetch.GetAsync(client, "sub/data.bin", deadline.Token);
        var topHit = await Fetch.GetAsync(client, "data.bin", deadline.Token);

        nestedMiss.Body.Should().Equal(nested);
        topMiss.Body.Should().Equal(top);
        nestedHit.Body.Should().Equal(nested);
        topHit.Body.Should().Equal(top);
        topMiss.Head.Source.Should().Be(ResponseSource.CacheMiss, "the nested file's entry must not answer for the top one");
        topHit.Head.Source.Should().Be(ResponseSource.CacheHit);
    }
}
