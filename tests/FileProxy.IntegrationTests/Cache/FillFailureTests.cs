using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class FillFailureTests(ITestOutputHelper output)
{
    private const int FileBytes = 8 * 1024 * 1024;
    private const int FailAfterBytes = 3 * 1024 * 1024;
    private const int Readers = 5;

    [Fact]
    public async Task A_body_that_breaks_mid_fill_fails_every_reader_instead_of_ending_short()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        cluster.Root.Write("broken.bin", Fetch.RandomBytes(FileBytes, seed: 3));
        var fault = origin.FailAfter("broken.bin", FailAfterBytes);

        var readers = await StartReadersAsync(cluster, Readers, deadline.Token);
        fault.Release();

        foreach (var reader in readers)
        {
            await using (reader)
            {
                var readToEnd = () => reader.ReadToEndAsync(deadline.Token);
                await readToEnd.Should().ThrowAsync<UpstreamException>("a body cut at the origin must not look complete");
                reader.Received.Should().BeLessThan(FileBytes);
            }
        }
    }

    [Fact]
    public async Task A_fill_that_fails_under_many_coalesced_readers_logs_one_warning_and_no_error()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var origin = new OriginControl();
        var log = new LogCapture(output);
        await using var cluster = await Cluster.StartAsync(log, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        cluster.Root.Write("broken.bin", Fetch.RandomBytes(FileBytes, seed: 3));
        var fault = origin.FailAfter("broken.bin", FailAfterBytes);

        var readers = await StartReadersAsync(cluster, 24, deadline.Token);
        fault.Release();
        foreach (var reader in readers)
        {
            await using (reader)
            {
                await FluentActions.Awaiting(() => reader.ReadToEndAsync(deadline.Token)).Should().ThrowAsync<UpstreamException>();
            }
        }
        await Poll.UntilAsync(() => log.LinesContaining("Cut after").Count(line => line.Contains("proxy:", StringComparison.Ordinal)) == 24,
            "every reader's request line is logged", deadline.Token);

        log.LinesContaining("[Warning] proxy:").Should().ContainSingle("one failed fill is one event, whatever its readers")
            .Which.Should().Contain("broken.bin");
        log.LinesContaining("[Error] proxy:").Should().BeEmpty("no reader adds an error (or a stack trace) of its own");
    }

    [Fact]
    public async Task A_fill_that_broke_mid_body_leaves_nothing_in_the_cache_directory()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        cluster.Root.Write("broken.bin", Fetch.RandomBytes(FileBytes, seed: 3));
        var fault = origin.FailAfter("broken.bin", FailAfterBytes);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);

        var readers = await StartReadersAsync(cluster, Readers, deadline.Token);
        await Poll.UntilAsync(() => view.TempFiles.Length == 1, "the fill has its temporary file", deadline.Token);
        fault.Release();
        foreach (var reader in readers)
        {
            await using (reader)
            {
                await FluentActions.Awaiting(() => reader.ReadToEndAsync(deadline.Token)).Should().ThrowAsync<UpstreamException>();
            }
        }
        await Poll.UntilAsync(() => view.TempFiles.Length == 0, "the failed fill's temporary file is gone", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        view.EntryFiles.Should().BeEmpty("a failed fill commits nothing");
        stats["entries"].Should().Be(0);
        stats["bytes_cached"].Should().Be(0);
        stats["fills_in_progress"].Should().Be(0);
        stats["upstream_failures"].Should().Be(1);
    }

    [Fact]
    public async Task The_request_after_a_failed_fill_fetches_the_file_again_and_gets_every_byte()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        var content = Fetch.RandomBytes(FileBytes, seed: 4);
        cluster.Root.Write("broken.bin", content);
        var fault = origin.FailAfter("broken.bin", FailAfterBytes);
        await using (var reader = await StreamingGet.StartAsync(cluster.ProxyPort, "broken.bin", deadline.Token))
        {
            fault.Release();
            await FluentActions.Awaiting(() => reader.ReadToEndAsync(deadline.Token)).Should().ThrowAsync<UpstreamException>();
        }

        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var again = await ProxyCache.WarmAsync(cluster, client, "broken.bin", deadline.Token);
        var hit = await Fetch.GetAsync(client, "broken.bin", deadline.Token);

        again.Head.Source.Should().Be(ResponseSource.CacheMiss);
        again.Body.Should().Equal(content);
        hit.Head.Source.Should().Be(ResponseSource.CacheHit);
        hit.Body.Should().Equal(content);
        origin.Gets("broken.bin").Should().Be(2);
    }

    [Fact]
    public async Task A_reader_of_a_fill_whose_bytes_do_not_match_the_announced_digest_gets_an_error_not_a_whole_body()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        cluster.Root.Write("liar.bin", Fetch.RandomBytes(FileBytes, seed: 5));
        origin.AnnounceWrongDigest("liar.bin");
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var fetch = () => Fetch.GetAsync(client, "liar.bin", deadline.Token);

        await fetch.Should().ThrowAsync<UpstreamException>("the proxy must not complete a body it could not verify");
    }

    [Fact]
    public async Task A_file_whose_bytes_do_not_match_the_announced_digest_is_not_cached()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        var content = Fetch.RandomBytes(1024 * 1024, seed: 5);
        cluster.Root.Write("liar.bin", content);
        origin.AnnounceWrongDigest("liar.bin");
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await using (var first = await StreamingGet.StartAsync(cluster.ProxyPort, "liar.bin", deadline.Token))
        {
            await FluentActions.Awaiting(() => first.ReadToEndAsync(deadline.Token)).Should().ThrowAsync<UpstreamException>();
        }
        await Poll.UntilAsync(async () => (await cluster.ProxyStatsAsync(deadline.Token))["fills_in_progress"] == 0,
            "the failed fill is over", deadline.Token);

        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var honest = await Fetch.GetAsync(client, "liar.bin", deadline.Token);

        view.TempFiles.Should().BeEmpty();
        honest.Head.Source.Should().Be(ResponseSource.CacheMiss, "the unverified copy must not have been cached");
        honest.Body.Should().Equal(content);
        origin.Gets("liar.bin").Should().Be(2);
    }

    [Fact]
    public async Task A_cold_file_is_UpstreamUnavailable_while_the_origin_is_down_and_fetched_once_it_is_back()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(100_000, seed: 6);
        cluster.Root.Write("later.bin", content);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await cluster.StopOriginAsync();

        var down = await Fetch.GetAsync(client, "later.bin", deadline.Token);
        cluster.RestartOrigin();
        var back = await Fetch.GetAsync(client, "later.bin", deadline.Token);

        down.Head.Status.Should().Be(StatusCode.UpstreamUnavailable);
        back.Head.Source.Should().Be(ResponseSource.CacheMiss, "a failed fetch is not remembered as an answer");
        back.Body.Should().Equal(content);
    }

    /// <summary>Starts <paramref name="count"/> GETs of broken.bin and reads each one's first body bytes, so all of
    /// them are following the same fill when the origin's fault goes off.</summary>
    private static async Task<StreamingGet[]> StartReadersAsync(Cluster cluster, int count, CancellationToken cancellationToken)
    {
        var readers = await Task.WhenAll(Enumerable.Range(0, count)
            .Select(_ => StreamingGet.StartAsync(cluster.ProxyPort, "broken.bin", cancellationToken)));
        foreach (var reader in readers)
        {
            reader.Head.Status.Should().Be(StatusCode.Ok);
            (await reader.ReadSomeAsync(cancellationToken)).Should().BePositive();
        }
        return readers;
    }
}
