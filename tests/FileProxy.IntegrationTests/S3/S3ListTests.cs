using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.S3;

/// <summary>LIST over a bucket of a real Ceph RGW: key prefixes as directories, objects as files with the version tag
/// GET reports, keys no GET could take left out, pages that go on after the cursor, and a proxy in front.</summary>
[Collection("ceph")]
public sealed class S3ListTests(CephFixture ceph, ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task Prefixes_are_directories_and_objects_are_files_under_the_served_prefix_only()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token, prefix: "site");
        origin.StartProxy();
        foreach (var (key, size) in ((string, int)[])[("site/a.bin", 10), ("site/dir/x.bin", 3), ("site/dir/sub/y.bin", 1),
            ("site/dir/", 0), ("site/zé.bin", 7), ("site/back\\slash", 1), ("site/dir//empty-segment", 1), ("other/hidden.bin", 1)])
        {
            await origin.PutAsync(key, Fetch.RandomBytes(size, seed: size), deadline.Token);
        }
        await using var client = await origin.ConnectAsync(deadline.Token);
        await using var proxy = await origin.ConnectProxyAsync(deadline.Token);

        var root = await client.ListAsync("", cancellationToken: deadline.Token);
        var dir = await client.ListAsync("dir", cancellationToken: deadline.Token);
        var missing = await client.ListAsync("nope", cancellationToken: deadline.Token);
        var throughProxy = await proxy.ListAsync("dir", cancellationToken: deadline.Token);

        root.Status.Should().Be(StatusCode.Ok, root.Message);
        var stat = (await client.StatAsync("a.bin", deadline.Token)).File!;
        root.Listing!.Entries.Should().Equal(
            new ListEntry("a.bin", EntryType.File, 10, stat.Version),
            new ListEntry("dir", EntryType.Directory, 0, ""),
            new ListEntry("zé.bin", EntryType.File, 7, root.Listing.Entries[^1].Version));
        root.Listing.More.Should().BeFalse();
        dir.Listing!.Entries.Select(e => (e.Name, e.Type, e.Size)).Should().Equal(
            [("sub", EntryType.Directory, 0L), ("x.bin", EntryType.File, 3L)], "the directory marker 'dir/' and a key with '//' are left out");
        missing.Status.Should().Be(StatusCode.NotFound);
        throughProxy.Listing!.Entries.Should().Equal(dir.Listing.Entries);
    }

    [SkippableFact]
    public async Task A_listing_goes_on_after_its_cursor_page_by_page()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(Deadline);
        await using var origin = await S3Origin.StartAsync(ceph, output, deadline.Token);
        string[] names = ["b", "c.bin", "d", "e.bin", "f", "g.bin", "h"];
        foreach (var name in names)
        {
            // Single letters are prefixes (directories) with two keys each; the others are objects.
            if (name.Length == 1)
            {
                await origin.PutAsync(name + "/1", [1], deadline.Token);
                await origin.PutAsync(name + "/2", [2], deadline.Token);
            }
            else
            {
                await origin.PutAsync(name, [3], deadline.Token);
            }
        }
        await using var client = await origin.ConnectAsync(deadline.Token);

        var seen = new List<ListEntry>();
        var cursor = "";
        var pages = 0;
        do
        {
            var head = await client.ListAsync("", cursor, 2, deadline.Token);
            head.Status.Should().Be(StatusCode.Ok, head.Message);
            head.Listing!.Entries.Count.Should().BeLessThanOrEqualTo(2);
            seen.AddRange(head.Listing.Entries);
            cursor = head.Listing.Next;
            pages++;
        }
        while (cursor.Length > 0 && pages < 20);

        seen.Select(e => e.Name).Should().Equal(names);
        seen.Select(e => e.Type).Should().Equal(names.Select(n => n.Length == 1 ? EntryType.Directory : EntryType.File));
        pages.Should().Be(4);
    }
}
