using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Cache;

public sealed class RestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Entries_come_back_after_a_restart_and_are_served_while_the_origin_is_down()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var files = await CacheFilesAsync(cluster, ["a.bin", "dir/b.bin", "c.bin"], deadline.Token);

        await cluster.StopProxyAsync();
        await cluster.StopOriginAsync();
        AgeAll(cluster, files.Keys, TimeSpan.FromHours(1)); // due for revalidation, which fails: served stale
        cluster.StartProxy();
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        stats["entries"].Should().Be(files.Count);
        stats["bytes_cached"].Should().Be(files.Values.Sum(f => (long)f.Length));
        foreach (var (name, content) in files)
        {
            var answer = await Fetch.GetAsync(client, name, deadline.Token);
            answer.Head.Source.Should().Be(ResponseSource.StaleHit, "{0} was cached before the restart", name);
            answer.Body.Should().Equal(content);
        }
    }

    [Fact]
    public async Task Entries_older_than_revalidate_after_come_back_after_a_restart_and_are_revalidated_not_fetched_again()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var origin = new OriginControl();
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: origin.Wrap);
        var files = await CacheFilesAsync(cluster, ["a.bin", "b.bin"], deadline.Token);

        await cluster.StopProxyAsync();
        AgeAll(cluster, files.Keys, TimeSpan.FromHours(1));
        cluster.StartProxy();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var answers = new List<Fetch.Result>();
        foreach (var name in files.Keys)
        {
            answers.Add(await Fetch.GetAsync(client, name, deadline.Token));
        }
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        answers.Select(a => a.Head.Source).Should().AllBeEquivalentTo(ResponseSource.CacheHit);
        answers.Select(a => a.Body).Should().Equal(files.Values, (a, b) => a.AsSpan().SequenceEqual(b));
        stats["upstream_fetches"].Should().Be(0);
        stats["revalidations"].Should().Be(files.Count, "each entry was last confirmed longer ago than RevalidateAfter");
        files.Keys.Select(origin.Gets).Should().AllBeEquivalentTo(1);
    }

    [Fact]
    public async Task Entries_keep_their_age_across_a_restart_so_a_recent_one_is_served_without_asking_the_origin()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, options => options with { RevalidateAfter = TimeSpan.FromHours(1) });
        var files = await CacheFilesAsync(cluster, ["recent.bin", "old.bin"], deadline.Token);

        await cluster.StopProxyAsync();
        new CacheDirectoryView(cluster.CacheDirectory.Path).Age("old.bin", TimeSpan.FromHours(2));
        cluster.StartProxy();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var recent = await Fetch.GetAsync(client, "recent.bin", deadline.Token);
        var afterRecent = await cluster.ProxyStatsAsync(deadline.Token);
        var old = await Fetch.GetAsync(client, "old.bin", deadline.Token);
        var afterOld = await cluster.ProxyStatsAsync(deadline.Token);

        recent.Head.Source.Should().Be(ResponseSource.CacheHit);
        recent.Body.Should().Equal(files["recent.bin"]);
        afterRecent["revalidations"].Should().Be(0, "recent.bin was confirmed a moment before the restart");
        old.Head.Source.Should().Be(ResponseSource.CacheHit);
        old.Body.Should().Equal(files["old.bin"]);
        afterOld["revalidations"].Should().Be(1, "old.bin was last confirmed two hours ago, longer than RevalidateAfter");
    }

    [Fact]
    public async Task A_revalidation_is_remembered_across_a_restart()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output, options => options with { RevalidateAfter = TimeSpan.FromHours(1) });
        var files = await CacheFilesAsync(cluster, ["confirmed.bin"], deadline.Token);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);

        await cluster.StopProxyAsync();
        view.Age("confirmed.bin", TimeSpan.FromHours(2));
        cluster.StartProxy();
        await using (var client = await cluster.ConnectProxyAsync(deadline.Token))
        {
            (await Fetch.GetAsync(client, "confirmed.bin", deadline.Token)).Body.Should().Equal(files["confirmed.bin"]);
        }
        (await cluster.ProxyStatsAsync(deadline.Token))["revalidations"].Should().Be(1);
        await cluster.StopProxyAsync();
        cluster.StartProxy();
        await using var again = await cluster.ConnectProxyAsync(deadline.Token);
        var answer = await Fetch.GetAsync(again, "confirmed.bin", deadline.Token);

        answer.Head.Source.Should().Be(ResponseSource.CacheHit);
        answer.Body.Should().Equal(files["confirmed.bin"]);
        (await cluster.ProxyStatsAsync(deadline.Token))["revalidations"].Should().Be(0,
            "the revalidation before the restart dated the entry's confirmation, and that was moments ago");
    }

    private static void AgeAll(Cluster cluster, IEnumerable<string> names, TimeSpan by)
    {
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        foreach (var name in names)
        {
            view.Age(name, by);
        }
    }

    public static TheoryData<string> Damages => ["truncated data", "grown data", "garbled metadata", "metadata of another name"];

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task A_damaged_entry_is_never_served_and_is_fetched_again(string damage)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var files = await CacheFilesAsync(cluster, ["victim.bin", "intact.bin"], deadline.Token);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await cluster.StopProxyAsync();

        Damage(view, "victim.bin", damage);
        cluster.StartProxy();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var victim = await Fetch.GetAsync(client, "victim.bin", deadline.Token);
        var intact = await Fetch.GetAsync(client, "intact.bin", deadline.Token);

        victim.Head.Source.Should().Be(ResponseSource.CacheMiss);
        victim.Body.Should().Equal(files["victim.bin"]);
        intact.Head.Source.Should().Be(ResponseSource.CacheHit);
        intact.Body.Should().Equal(files["intact.bin"]);
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task A_damaged_entrys_files_are_deleted_once_it_is_found_out(string damage)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var files = await CacheFilesAsync(cluster, ["victim.bin", "intact.bin"], deadline.Token);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await cluster.StopProxyAsync();
        var damagedData = view.DataPathsOf("victim.bin").Single();

        Damage(view, "victim.bin", damage);
        cluster.StartProxy();
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        await ProxyCache.WarmAsync(cluster, client, "victim.bin", deadline.Token);
        var stats = await cluster.ProxyStatsAsync(deadline.Token);

        File.Exists(damagedData).Should().BeFalse();
        view.DataPathsOf("victim.bin").Should().ContainSingle()
            .Which.Should().Match(path => File.ReadAllBytes(path).SequenceEqual(files["victim.bin"]));
        view.EntryFiles.Should().HaveCount(4, "two entries, each a .meta and a .data");
        stats["entries"].Should().Be(2);
        stats["bytes_cached"].Should().Be(view.DataBytes);
    }

    [Fact]
    public async Task Metadata_without_its_data_file_is_dropped_at_start_up()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var files = await CacheFilesAsync(cluster, ["victim.bin", "intact.bin"], deadline.Token);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await cluster.StopProxyAsync();

        File.Delete(view.DataPathsOf("victim.bin").Single());
        cluster.StartProxy();
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var victim = await Fetch.GetAsync(client, "victim.bin", deadline.Token);

        stats["entries"].Should().Be(1);
        stats["bytes_cached"].Should().Be(files["intact.bin"].Length);
        victim.Head.Source.Should().Be(ResponseSource.CacheMiss);
        victim.Body.Should().Equal(files["victim.bin"]);
    }

    [Fact]
    public async Task Leftover_temporary_and_orphan_files_are_removed_at_start_up()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var files = await CacheFilesAsync(cluster, ["kept.bin"], deadline.Token);
        var view = new CacheDirectoryView(cluster.CacheDirectory.Path);
        await cluster.StopProxyAsync();
        var key = CacheDirectoryView.KeyOf("kept.bin");
        cluster.CacheDirectory.Write($"tmp/{key}.{Guid.NewGuid():N}.part", Fetch.RandomBytes(5_000, seed: 1));
        cluster.CacheDirectory.Write($"entries/{key[..2]}/{key}.{Guid.NewGuid():N}.meta-tmp", [1, 2, 3]);
        var orphanKey = CacheDirectoryView.KeyOf("never-committed.bin");
        cluster.CacheDirectory.Write($"entries/{orphanKey[..2]}/{orphanKey}.{Guid.NewGuid():N}.data", Fetch.RandomBytes(5_000, seed: 2));

        cluster.StartProxy();
        var stats = await cluster.ProxyStatsAsync(deadline.Token);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        var kept = await Fetch.GetAsync(client, "kept.bin", deadline.Token);

        view.TempFiles.Should().BeEmpty();
        view.EntryFiles.Select(Path.GetFileName).Should().BeEquivalentTo(
            [Path.GetFileName(view.MetaPathOf("kept.bin")), Path.GetFileName(view.DataPathsOf("kept.bin").Single())]);
        stats["entries"].Should().Be(1);
        kept.Head.Source.Should().Be(ResponseSource.CacheHit);
        kept.Body.Should().Equal(files["kept.bin"]);
    }

    private static async Task<Dictionary<string, byte[]>> CacheFilesAsync(Cluster cluster, string[] names, CancellationToken cancellationToken)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        await using var client = await cluster.ConnectProxyAsync(cancellationToken);
        for (var i = 0; i < names.Length; i++)
        {
            files[names[i]] = Fetch.RandomBytes(100_000 + (i * 7_777), seed: 10 + i);
            cluster.Root.Write(names[i], files[names[i]]);
            (await ProxyCache.WarmAsync(cluster, client, names[i], cancellationToken)).Head.Source.Should().Be(ResponseSource.CacheMiss);
        }
        return files;
    }

    private static void Damage(CacheDirectoryView view, string name, string damage)
    {
        var data = view.DataPathsOf(name).Single();
        var meta = view.MetaPathOf(name);
        switch (damage)
        {
            case "truncated data":
                using (var file = new FileStream(data, FileMode.Open))
                {
                    file.SetLength(file.Length / 2);
                }
                break;
            case "grown data":
                File.AppendAllText(data, "trailing junk");
                break;
            case "garbled metadata":
                File.WriteAllText(meta, "fileproxy-cache-entry 1\nname victim.bin\nsize twelve\n");
                break;
            case "metadata of another name":
                File.WriteAllText(meta, File.ReadAllText(meta).Replace("name victim.bin", "name intact.bin", StringComparison.Ordinal));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(damage), damage, "unknown damage");
        }
    }
}
