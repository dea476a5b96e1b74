using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class CrashRecoveryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_proxy_process_killed_mid_fill_restarts_with_its_committed_entries_and_no_leftovers()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        using var releaseOrigin = origin;
        using var cacheDirectory = new TempDirectory("fileproxy-crash-cache");
        var view = new CacheDirectoryView(cacheDirectory.Path);
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal)
        {
            ["a.bin"] = Fetch.RandomBytes(700_000, seed: 1),
            ["b.bin"] = Fetch.RandomBytes(1_300_000, seed: 2),
            ["slow.bin"] = Fetch.RandomBytes(8 * 1024 * 1024, seed: 3),
        };
        foreach (var (name, content) in files)
        {
            cluster.Root.Write(name, content);
        }

        await using (var proxy = ProxyProcess.Start(cluster.OriginPort, cacheDirectory.Path, output))
        {
            await proxy.WaitUntilListeningAsync(deadline.Token);
            await using (var client = await FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token))
            {
                (await Fetch.GetAsync(client, "a.bin", deadline.Token)).Body.Should().Equal(files["a.bin"]);
                (await Fetch.GetAsync(client, "b.bin", deadline.Token)).Body.Should().Equal(files["b.bin"]);
            }
            await ProxyCache.FillsDoneAsync(proxy.Port, deadline.Token);
            var hold = origin.Hold("slow.bin", 2 * 1024 * 1024);
            await using var slow = await StreamingGet.StartAsync(proxy.Port, "slow.bin", deadline.Token);
            (await slow.ReadSomeAsync(deadline.Token)).Should().BePositive();
            await hold.Reached.WaitAsync(deadline.Token);
            view.TempFiles.Should().ContainSingle("the fill of slow.bin is under way");

            await proxy.KillAsync(deadline.Token);
            hold.Release();
        }
        view.TempFiles.Should().ContainSingle("SIGKILL gave the proxy no chance to clean up");

        await using var restarted = ProxyProcess.Start(cluster.OriginPort, cacheDirectory.Path, output);
        await restarted.WaitUntilListeningAsync(deadline.Token);
        var leftovers = view.TempFiles;
        var stats = await ProxyCache.StatsAsync(restarted.Port, deadline.Token);
        var answers = new Dictionary<string, Fetch.Result>(StringComparer.Ordinal);
        await using (var client = await FileClient.ConnectAsync("127.0.0.1", restarted.Port, cancellationToken: deadline.Token))
        {
            foreach (var name in files.Keys)
            {
                answers[name] = await Fetch.GetAsync(client, name, deadline.Token);
            }
        }

        leftovers.Should().BeEmpty("start-up removes the killed fill's temporary file");
        stats["entries"].Should().Be(2);
        stats["bytes_cached"].Should().Be(files["a.bin"].Length + files["b.bin"].Length);
        answers["a.bin"].Head.Source.Should().Be(ResponseSource.CacheHit);
        answers["b.bin"].Head.Source.Should().Be(ResponseSource.CacheHit);
        answers["slow.bin"].Head.Source.Should().Be(ResponseSource.CacheMiss);
        foreach (var (name, content) in files)
        {
            answers[name].Body.Should().Equal(content, "{0} must be byte-exact after the crash", name);
        }
        origin.Gets("a.bin").Should().Be(1);
        origin.Gets("slow.bin").Should().Be(2);
    }
}
