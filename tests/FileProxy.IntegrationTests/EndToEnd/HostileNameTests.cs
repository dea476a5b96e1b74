using System.Net;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using FileProxy.Server;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>Names that try to leave the served directory, or are not files, are refused by both servers with an
/// answer (the connection stays usable), and the proxy caches nothing for them.</summary>
public sealed class HostileNameTests(ITestOutputHelper output)
{
    /// <summary>Labels stand for the names so that test names stay printable (one has a NUL).</summary>
    private static readonly Dictionary<string, string> HostileNames = new(StringComparer.Ordinal)
    {
        ["parent"] = "../x",
        ["nested parent"] = "sub/../../x",
        ["absolute"] = "/etc/passwd",
        ["empty segment"] = "a//b",
        ["trailing slash"] = "sub/",
        ["dot segment"] = "./ok.txt",
        ["backslash"] = "a\\b",
        ["backslash parent"] = "..\\x",
        ["nul"] = "ok.txt\0.png",
        ["newline"] = "a\nb",
        ["empty"] = "",
    };

    public static TheoryData<string, Peer> HostileCases()
    {
        var cases = new TheoryData<string, Peer>();
        foreach (var label in HostileNames.Keys)
        {
            cases.Add(label, Peer.Origin);
            cases.Add(label, Peer.Proxy);
        }
        return cases;
    }

    public static TheoryData<string> HostileLabels() => [.. HostileNames.Keys];

    [Theory]
    [MemberData(nameof(HostileCases))]
    public async Task A_hostile_name_gets_BadRequest_and_the_connection_serves_the_next_request(string label, Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(1_000, seed: 3);
        cluster.Root.Write("ok.txt", content);
        cluster.Root.Write("sub/ok.txt", content);
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var refused = await Fetch.GetAsync(client, HostileNames[label], deadline.Token);
        var next = await Fetch.GetAsync(client, "ok.txt", deadline.Token);

        refused.Head.Status.Should().Be(StatusCode.BadRequest);
        refused.Head.Message.Should().NotBeEmpty("the refusal says why");
        next.Head.Status.Should().Be(StatusCode.Ok, "a refused name is an answer, not a reason to drop the connection");
        next.Body.Should().Equal(content);
    }

    [Theory]
    [MemberData(nameof(HostileLabels))]
    public async Task A_hostile_name_never_reaches_the_proxys_cache_or_the_origin(string label)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var refused = await Fetch.GetAsync(client, HostileNames[label], deadline.Token);

        refused.Head.Status.Should().Be(StatusCode.BadRequest);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        stats["cache_misses"].Should().Be(0);
        stats["upstream_fetches"].Should().Be(0);
        cluster.FilesInCache().Should().BeEmpty();
    }

    [Theory]
    [InlineData(Peer.Origin, false)]
    [InlineData(Peer.Origin, true)]
    [InlineData(Peer.Proxy, false)]
    [InlineData(Peer.Proxy, true)]
    public async Task A_symlink_inside_the_root_leading_outside_it_is_Forbidden(Peer peer, bool linkToDirectory)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        using var outside = new TempDirectory("fileproxy-outside");
        outside.Write("secret.txt", "top secret"u8.ToArray());
        string name;
        if (linkToDirectory)
        {
            Directory.CreateSymbolicLink(cluster.Root.Combine("elsewhere"), outside.Path);
            name = "elsewhere/secret.txt";
        }
        else
        {
            File.CreateSymbolicLink(cluster.Root.Combine("secret.txt"), outside.Combine("secret.txt"));
            name = "secret.txt";
        }
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var first = await Fetch.GetAsync(client, name, deadline.Token);
        var second = await Fetch.GetAsync(client, name, deadline.Token);

        first.Head.Status.Should().Be(StatusCode.Forbidden, first.Head.Message);
        second.Head.Status.Should().Be(StatusCode.Forbidden, "a refusal is not cached as a file");
        first.Body.Should().BeEmpty();
        cluster.FilesInCache().Should().BeEmpty();
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task A_symlink_inside_the_root_leading_to_another_file_inside_it_is_served(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(2_000, seed: 4);
        cluster.Root.Write("real/target.bin", content);
        File.CreateSymbolicLink(cluster.Root.Combine("alias.bin"), cluster.Root.Combine("real/target.bin"));
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var result = await Fetch.GetAsync(client, "alias.bin", deadline.Token);

        result.Head.Status.Should().Be(StatusCode.Ok, result.Head.Message);
        result.Body.Should().Equal(content);
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task A_directory_name_is_NotFound_and_nothing_is_cached(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("sub/inner/file.txt", "x"u8.ToArray());
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var top = await Fetch.GetAsync(client, "sub", deadline.Token);
        var inner = await Fetch.GetAsync(client, "sub/inner", deadline.Token);
        var stat = await client.StatAsync("sub", deadline.Token);

        top.Head.Status.Should().Be(StatusCode.NotFound, top.Head.Message);
        inner.Head.Status.Should().Be(StatusCode.NotFound, inner.Head.Message);
        stat.Status.Should().Be(StatusCode.NotFound, stat.Message);
        cluster.FilesInCache().Should().BeEmpty();
    }

    [Fact]
    public async Task A_missing_file_is_NotFound_from_the_proxy_and_is_not_cached()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var cluster = await Cluster.StartAsync(output);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var first = await Fetch.GetAsync(client, "later.txt", deadline.Token);
        await cluster.WaitForFillsAsync(deadline.Token);
        cluster.Root.Write("later.txt", "now here"u8.ToArray());
        var second = await Fetch.GetAsync(client, "later.txt", deadline.Token);

        first.Head.Status.Should().Be(StatusCode.NotFound);
        second.Head.Status.Should().Be(StatusCode.Ok, "a NotFound answer must not be remembered");
        second.Body.Should().Equal("now here"u8.ToArray());
        second.Head.Source.Should().Be(ResponseSource.CacheMiss);
    }

    [Fact]
    public async Task A_root_reached_through_a_symlinked_parent_directory_still_serves_its_files()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var real = new TempDirectory("fileproxy-real");
        using var links = new TempDirectory("fileproxy-links");
        var content = Fetch.RandomBytes(3_000, seed: 5);
        real.Write("served/file.bin", content);
        Directory.CreateSymbolicLink(links.Combine("via"), real.Path);
        var log = TestLog.For(output, "origin");
        await using var origin = new ProtocolServer(new DirectorySource(links.Combine("via", "served"), log),
            new ProtocolServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, log);
        origin.Start();
        await using var client = await FileClient.ConnectAsync("127.0.0.1", origin.LocalEndPoint.Port, cancellationToken: deadline.Token);

        var result = await Fetch.GetAsync(client, "file.bin", deadline.Token);

        result.Head.Status.Should().Be(StatusCode.Ok, "the file lies inside the served directory: {0}", result.Head.Message);
        result.Body.Should().Equal(content);
    }
}
