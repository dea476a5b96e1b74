using System.Globalization;
using System.Net;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Programs;

/// <summary>How the built server and proxy start, refuse to start and stop, with their exit codes.</summary>
public sealed class StartUpTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_second_proxy_on_a_cache_directory_in_use_exits_3_naming_the_holder_and_touches_nothing()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var origin = new OwnedPort();
        using var cache = new TempDirectory("fileproxy-cache");
        await using var first = ProxyProcess.Start(origin.Port, cache.Path, output);
        await first.WaitUntilListeningAsync(deadline.Token);
        var key = CacheDirectoryView.KeyOf("big.bin");
        var fillInProgress = cache.Write($"tmp/{key}.{Guid.NewGuid():N}.part", [1, 2, 3]);

        await using var second = ProxyProcess.Start(origin.Port, cache.Path, output);
        var exitCode = await second.Program.WaitForExitAsync(deadline.Token);

        exitCode.Should().Be(3);
        second.Program.Stderr.Should().Contain($"is in use by another proxy (process {first.Program.Id.ToString(CultureInfo.InvariantCulture)})");
        File.Exists(fillInProgress).Should().BeTrue("the second proxy must not clean up the first one's fill");
        first.HasExited.Should().BeFalse();
    }

    [Fact]
    public async Task The_proxy_starts_with_a_tier_the_origin_s_addresses_and_tls_with_a_token_together()
    {
        // Each of these pairs was once refused at start-up (subflows spoke plain TCP; a tier's fills took one path).
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var origin = new OwnedPort();
        using var peer = new OwnedPort();
        using var work = new TempDirectory("fileproxy-startup");
        var (certificate, _) = TestCertificates.SelfSigned("origin");
        var ca = work.Write("origin.pem", System.Text.Encoding.ASCII.GetBytes(certificate.ExportCertificatePem()));
        var token = work.Write("token", "s3cret\n"u8.ToArray());
        var address = $"127.0.0.1:{origin.Port.ToString(CultureInfo.InvariantCulture)}";

        await using var proxy = ProxyProcess.Start(origin.Port, work.Combine("cache"), output,
            "--upstream-address", address, "--upstream-tls-ca", ca, "--upstream-token-file", token,
            "--peer", $"127.0.0.1:{peer.Port.ToString(CultureInfo.InvariantCulture)}");
        await proxy.WaitUntilListeningAsync(deadline.Token);

        proxy.HasExited.Should().BeFalse();
        (proxy.Program.Stdout + proxy.Program.Stderr).Should().Contain("Misses are fetched over 2 addresses of the origin");
    }

    [Fact]
    public async Task The_cache_directory_is_free_again_once_its_proxy_stopped()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var origin = new OwnedPort();
        using var cache = new TempDirectory("fileproxy-cache");
        await using (var first = ProxyProcess.Start(origin.Port, cache.Path, output))
        {
            await first.WaitUntilListeningAsync(deadline.Token);
            first.Program.Terminate();
            (await first.Program.WaitForExitAsync(deadline.Token)).Should().Be(0, "SIGTERM is a normal stop");
        }

        await using var second = ProxyProcess.Start(origin.Port, cache.Path, output);
        await second.WaitUntilListeningAsync(deadline.Token);
    }

    [Fact]
    public async Task A_non_empty_directory_the_proxy_did_not_make_is_refused_and_left_as_it_was()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var origin = new OwnedPort();
        using var notACache = new TempDirectory("fileproxy-var");
        notACache.Write("tmp/session.txt", [1]);
        notACache.Write("entries/ab/notes.txt", [2]);
        notACache.Write("log.txt", [3]);
        var before = notACache.Files();

        await using var proxy = ProxyProcess.Start(origin.Port, notACache.Path, output);
        var exitCode = await proxy.Program.WaitForExitAsync(deadline.Token);

        exitCode.Should().Be(1);
        proxy.Program.Stderr.Should().Contain("is not empty and was not made by the proxy");
        notACache.Files().Should().BeEquivalentTo(before, "nothing may be deleted or added");
    }

    [Fact]
    public async Task Files_whose_names_the_proxy_did_not_make_survive_its_start_up()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        await cluster.StopProxyAsync();
        var key = CacheDirectoryView.KeyOf("a.bin");
        string[] foreign = ["tmp/keep.txt", $"tmp/{key}.part", "entries/ab/keep.data", $"entries/{key[..2]}/{key}.meta.bak", "entries/zz/x.meta"];
        foreach (var path in foreign)
        {
            cluster.CacheDirectory.Write(path, [1, 2, 3]);
        }
        var ours = cluster.CacheDirectory.Write($"tmp/{key}.{Guid.NewGuid():N}.part", [4]);

        cluster.StartProxy();

        foreach (var path in foreign)
        {
            File.Exists(cluster.CacheDirectory.Combine(path)).Should().BeTrue("{0} is not a name the proxy makes", path);
        }
        File.Exists(ours).Should().BeFalse("a leftover temporary file of the proxy's own is removed");
        await Task.CompletedTask.WaitAsync(deadline.Token);
    }

    [Fact]
    public async Task A_taken_port_is_reported_naming_it_before_the_cache_is_scanned()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var origin = new OwnedPort();
        using var taken = new OwnedPort();
        using var listener = taken.Listen();
        using var cache = new TempDirectory("fileproxy-cache");

        var proxy = await ChildProgram.RunAsync("Proxy", output, deadline.Token, "127.0.0.1", $"{origin.Port}", $"{taken.Port}",
            "--listen", "127.0.0.1", "--cache-dir", cache.Path);

        proxy.ExitCode.Should().Be(1);
        proxy.Stderr.Should().Contain($"cannot listen on 127.0.0.1:{taken.Port.ToString(CultureInfo.InvariantCulture)}: Address already in use");
        proxy.Stderr.Should().NotContain("loaded in", "the port is bound before the cache is scanned");
    }

    [Fact]
    public async Task The_server_says_a_root_that_is_a_file_is_not_a_directory_and_exits_1()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var directory = new TempDirectory("fileproxy-root");
        var file = directory.Write("photo.jpg", [1]);

        var server = await ChildProgram.RunAsync("Server", output, deadline.Token, "--root", file, "--port", "0");

        server.ExitCode.Should().Be(1);
        server.Stderr.Should().Contain("is a file, not a directory").And.NotContain("does not exist");
    }

    [Fact]
    public async Task The_server_exits_0_on_SIGTERM_and_1_on_a_taken_port()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var root = new TempDirectory("fileproxy-root");
        await using var server = ChildProgram.Start("Server", output, ["--root", root.Path, "--port", "0", "--listen", "127.0.0.1"]);
        var listening = await server.WaitForLineAsync(line => line.Contains("Listening on", StringComparison.Ordinal), deadline.Token);
        var port = IPEndPoint.Parse(listening[(listening.IndexOf("Listening on ", StringComparison.Ordinal) + 13)..].Trim()).Port;

        var second = await ChildProgram.RunAsync("Server", output, deadline.Token,
            "--root", root.Path, "--port", $"{port}", "--listen", "127.0.0.1");
        server.Terminate();

        second.ExitCode.Should().Be(1);
        second.Stderr.Should().Contain($"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        (await server.WaitForExitAsync(deadline.Token)).Should().Be(0);
    }
}
