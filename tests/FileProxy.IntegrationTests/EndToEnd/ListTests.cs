using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>LIST against the real origin and proxy on loopback: what is listed (and what is not), paging, hostile
/// directories, an older peer, and the client's 'list' and '-r' as a user runs them.</summary>
public sealed class ListTests(ITestOutputHelper output)
{
    private static readonly byte[] Photo = Fetch.RandomBytes(300_000, seed: 140);

    /// <summary>A root with files, a subdirectory, symlinks in and out of the root, a dangling one and a FIFO; and a
    /// directory beside the root that the outward links point into.</summary>
    private static TempDirectory Populate(Cluster cluster)
    {
        var outside = new TempDirectory("fileproxy-outside");
        File.WriteAllText(outside.Combine("secret.txt"), "not yours");
        cluster.Root.Write("photo.jpg", Photo);
        cluster.Root.Write("docs/read me.txt", "hello\n"u8.ToArray());
        cluster.Root.Write("docs/sub/deep.bin", Fetch.RandomBytes(5000, seed: 141));
        File.CreateSymbolicLink(cluster.Root.Combine("alias.jpg"), "photo.jpg");
        File.CreateSymbolicLink(cluster.Root.Combine("docs-link"), "docs");
        File.CreateSymbolicLink(cluster.Root.Combine("escape.txt"), outside.Combine("secret.txt"));
        File.CreateSymbolicLink(cluster.Root.Combine("escape-dir"), outside.Path);
        File.CreateSymbolicLink(cluster.Root.Combine("dangling"), "no-such-file");
        Mkfifo(cluster.Root.Combine("pipe"));
        return outside;
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task A_listing_shows_files_and_directories_and_symlinks_that_stay_inside_the_root(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        using var outside = Populate(cluster);
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var head = await client.ListAsync("", cancellationToken: deadline.Token);

        head.Status.Should().Be(StatusCode.Ok, head.Message);
        var photo = (await client.StatAsync("photo.jpg", deadline.Token)).File!;
        head.Listing!.Entries.Should().Equal(
            new ListEntry("alias.jpg", EntryType.File, Photo.Length, photo.Version),
            new ListEntry("docs", EntryType.Directory, 0, ""),
            new ListEntry("docs-link", EntryType.Directory, 0, ""),
            new ListEntry("photo.jpg", EntryType.File, Photo.Length, photo.Version));
        head.Listing.More.Should().BeFalse();
        var docs = await client.ListAsync("docs-link", cancellationToken: deadline.Token);
        docs.Listing!.Entries.Select(e => (e.Name, e.Type, e.Size)).Should().Equal(
            ("read me.txt", EntryType.File, 6L), ("sub", EntryType.Directory, 0L));
        (await client.ListAsync("escape-dir", cancellationToken: deadline.Token)).Status.Should().Be(StatusCode.Forbidden,
            "a directory symlink that leads outside the root is refused as GET refuses such a file");
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task A_directory_larger_than_a_page_is_listed_whole_page_by_page(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var names = Enumerable.Range(0, 1500).Select(i => $"f{i:D5}.bin").ToList();
        foreach (var name in names)
        {
            File.WriteAllBytes(cluster.Root.Combine(name), []);
        }
        await using var client = await cluster.ConnectAsync(peer, deadline.Token);

        var first = await client.ListAsync("", cancellationToken: deadline.Token);
        var second = await client.ListAsync("", first.Listing!.Next, cancellationToken: deadline.Token);

        first.Listing.Entries.Should().HaveCount(ProtocolLimits.MaxListEntries, "a page holds at most 1000 entries");
        first.Listing.More.Should().BeTrue();
        second.Listing!.More.Should().BeFalse();
        first.Listing.Entries.Concat(second.Listing.Entries).Select(e => e.Name).Should().Equal(names);

        // A small limit: every entry exactly once, in order, across pages of 7.
        var seen = new List<string>();
        var cursor = "";
        var pages = 0;
        do
        {
            var page = (await client.ListAsync("", cursor, 7, deadline.Token)).Listing!;
            page.Entries.Count.Should().BeLessThanOrEqualTo(7);
            seen.AddRange(page.Entries.Select(e => e.Name));
            cursor = page.Next;
            pages++;
        }
        while (cursor.Length > 0 && pages < 300);
        seen.Should().Equal(names);
        pages.Should().Be(215);
    }

    [Fact]
    public async Task A_directory_that_changes_between_pages_is_listed_as_it_is_now()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        foreach (var name in (string[])["a", "b", "c", "d"])
        {
            cluster.Root.Write("dir/" + name, [1]);
        }
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);

        var first = (await client.ListAsync("dir", "", 2, deadline.Token)).Listing!;
        File.Delete(cluster.Root.Combine("dir", "c"));
        cluster.Root.Write("dir/bb", [2, 2]);
        var second = (await client.ListAsync("dir", first.Next, 0, deadline.Token)).Listing!;

        first.Entries.Select(e => e.Name).Should().Equal("a", "b");
        second.Entries.Select(e => (e.Name, e.Size)).Should().Equal([("bb", 2L), ("d", 1L)],
            "the names kept between pages are read again once the directory changed");
    }

    public static TheoryData<string, StatusCode, string> HostileDirectories => new()
    {
        { "../etc", StatusCode.BadRequest, "name has a '..' segment" },
        { "docs/../..", StatusCode.BadRequest, "name has a '..' segment" },
        { "/etc", StatusCode.BadRequest, "name must be relative (it starts with '/')" },
        { "docs\0", StatusCode.BadRequest, "name contains a NUL byte" },
        { "docs/", StatusCode.BadRequest, "name has an empty segment ('//' or a trailing '/')" },
        { "docs\\sub", StatusCode.BadRequest, "name contains a backslash; use '/' between directories" },
        { "escape-dir", StatusCode.Forbidden, "'escape-dir' resolves outside the served directory" },
        { "photo.jpg", StatusCode.NotFound, "'photo.jpg' is not a directory" },
        { "nope", StatusCode.NotFound, "'nope' not found" },
    };

    [Theory]
    [MemberData(nameof(HostileDirectories))]
    public async Task A_directory_outside_the_rules_or_the_root_is_refused_with_a_clear_status(string directory, StatusCode status, string message)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        using var outside = Populate(cluster);
        foreach (var peer in (Peer[])[Peer.Origin, Peer.Proxy])
        {
            await using var client = await cluster.ConnectAsync(peer, deadline.Token);

            var head = await client.ListAsync(directory, cancellationToken: deadline.Token);

            head.Status.Should().Be(status, head.Message);
            head.Message.Should().Be(peer == Peer.Proxy && status != StatusCode.BadRequest ? "origin: " + message : message);
            (await client.StatAsync("photo.jpg", deadline.Token)).IsOk.Should().BeTrue("the connection goes on");
        }
    }

    [Fact]
    public async Task The_proxy_forwards_every_listing_so_a_new_file_shows_at_once_and_an_unreachable_origin_is_said()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("a.bin", [1]);
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);
        (await client.ListAsync("", cancellationToken: deadline.Token)).Listing!.Entries.Should().ContainSingle();

        cluster.Root.Write("b.bin", [2]);
        var after = await client.ListAsync("", cancellationToken: deadline.Token);
        await cluster.StopOriginAsync();
        var down = await client.ListAsync("", cancellationToken: deadline.Token);

        after.Listing!.Entries.Select(e => e.Name).Should().Equal("a.bin", "b.bin");
        down.Status.Should().Be(StatusCode.UpstreamUnavailable);
        down.Message.Should().StartWith("origin unreachable: ");
    }

    [Fact]
    public async Task An_older_peer_that_does_not_know_LIST_is_reported_as_not_supporting_it_and_the_connection_goes_on()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var older = ScriptedPeer.Start(ScriptedPeer.OlderServersAnswer, deadline.Token);
        await using var client = await FileClient.ConnectAsync("127.0.0.1", older.Port, cancellationToken: deadline.Token);

        var head = await client.ListAsync("", cancellationToken: deadline.Token);
        var again = await client.ListAsync("docs", cancellationToken: deadline.Token);
        var run = await ClientProcess.RunAsync(output, ["list", "--proxy", $"127.0.0.1:{older.Port}"], deadline.Token);

        head.Status.Should().Be(StatusCode.NotSupported);
        head.Message.Should().Be("the server does not support LIST (it answered: unknown opcode 0x06)");
        again.Status.Should().Be(StatusCode.NotSupported, "the older peer keeps the connection open");
        run.ExitCode.Should().Be(4);
        run.StandardError.Should().Contain("error: NotSupported: the server does not support LIST");
    }

    [Fact]
    public async Task A_peer_whose_pages_do_not_move_on_is_a_broken_peer_not_an_endless_listing()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var buffer = new byte[WireCodec.MaxResponseFrame];
        var same = new ResponseHead(StatusCode.Ok, "") { Listing = new DirectoryPage([new ListEntry("a", EntryType.File, 1, "v")], "a") };
        await using var peer = ScriptedPeer.Start(buffer[..WireCodec.EncodeResponse(Opcode.List, same, buffer)], deadline.Token);
        await using var client = await FileClient.ConnectAsync("127.0.0.1", peer.Port, cancellationToken: deadline.Token);

        var first = await client.ListAsync("", cancellationToken: deadline.Token);
        var again = () => client.ListAsync("", first.Listing!.Next, cancellationToken: deadline.Token);
        var run = await ClientProcess.RunAsync(output, ["list", "--proxy", $"127.0.0.1:{peer.Port}"], deadline.Token);

        first.IsOk.Should().BeTrue();
        await again.Should().ThrowAsync<UpstreamException>().WithMessage("*a LIST page did not go on after its cursor");
        run.ExitCode.Should().Be(5);
        run.StandardError.Should().Contain("broke the protocol: a LIST page did not go on after its cursor");
    }

    [Fact]
    public async Task Client_list_prints_one_entry_per_line_and_json_one_object_per_line()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var outside = Populate(cluster);
        var proxy = $"127.0.0.1:{cluster.ProxyPort}";
        var version = (await (await cluster.ConnectOriginAsync(deadline.Token)).StatAsync("docs/read me.txt", deadline.Token)).File!.Version;

        var text = await ClientProcess.RunAsync(output, ["list", "--proxy", proxy], deadline.Token);
        var json = await ClientProcess.RunAsync(output, ["list", "docs", "--json", "--proxy", proxy], deadline.Token);
        var tree = await ClientProcess.RunAsync(output, ["list", ".", "-r", "--proxy", proxy], deadline.Token);
        var refused = await ClientProcess.RunAsync(output, ["list", "../etc", "--proxy", proxy], deadline.Token);
        var missing = await ClientProcess.RunAsync(output, ["list", "nope", "--proxy", proxy], deadline.Token);

        text.ExitCode.Should().Be(0);
        Encoding.UTF8.GetString(text.StandardOutput).Should().Be(
            "-         300000  alias.jpg\n"
            + "d              -  docs/\n"
            + "d              -  docs-link/\n"
            + "-         300000  photo.jpg\n");
        json.ExitCode.Should().Be(0);
        var objects = Encoding.UTF8.GetString(json.StandardOutput).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement).ToList();
        objects.Should().HaveCount(2);
        objects[0].GetProperty("name").GetString().Should().Be("read me.txt");
        objects[0].GetProperty("path").GetString().Should().Be("docs/read me.txt");
        objects[0].GetProperty("type").GetString().Should().Be("file");
        objects[0].GetProperty("size").GetInt64().Should().Be(6);
        objects[0].GetProperty("version").GetString().Should().Be(version);
        objects[1].GetProperty("type").GetString().Should().Be("directory");
        objects[1].GetProperty("path").GetString().Should().Be("docs/sub");
        tree.ExitCode.Should().Be(0);
        Encoding.UTF8.GetString(tree.StandardOutput).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line[18..])
            .Should().Equal("alias.jpg", "photo.jpg", "docs/read me.txt", "docs/sub/deep.bin",
                "docs-link/read me.txt", "docs-link/sub/deep.bin");
        refused.ExitCode.Should().Be(4);
        refused.StandardError.Should().Contain("error: refusing directory '../etc': name has a '..' segment");
        missing.ExitCode.Should().Be(3);
        missing.StandardError.Should().Contain("error: NotFound: origin: 'nope' not found");
    }

    [Theory]
    [InlineData(Peer.Origin)]
    [InlineData(Peer.Proxy)]
    public async Task Fetching_a_tree_with_r_writes_every_file_byte_exact_under_its_name(Peer peer)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-tree");
        var files = new Dictionary<string, byte[]>
        {
            ["site/index.html"] = Fetch.RandomBytes(1234, seed: 150),
            ["site/img/a photo.jpg"] = Fetch.RandomBytes(700_000, seed: 151),
            ["site/img/empty"] = [],
            ["site/css/deep/er/style.css"] = Fetch.RandomBytes(77, seed: 152),
            ["other/not-fetched.bin"] = Fetch.RandomBytes(10, seed: 153),
        };
        foreach (var (name, content) in files)
        {
            cluster.Root.Write(name, content);
        }
        Directory.CreateDirectory(cluster.Root.Combine("site", "empty-dir"));

        var run = await ClientProcess.RunAsync(output, ["-r", "site", "-o", downloads.Path, "--proxy", $"127.0.0.1:{cluster.PortOf(peer)}"], deadline.Token);

        run.ExitCode.Should().Be(0, run.StandardError);
        downloads.Files().Order(StringComparer.Ordinal).Should().Equal(
            "site/css/deep/er/style.css", "site/img/a photo.jpg", "site/img/empty", "site/index.html");
        foreach (var name in downloads.Files())
        {
            File.ReadAllBytes(downloads.Combine(name)).Should().Equal(files[name], name);
        }
        Encoding.UTF8.GetString(run.StandardOutput).Should().MatchRegex(@"\n4 files: 4 fetched, 0 failed, 701311 bytes \(684\.87 KiB\) in [^\n]*\n$");
    }

    [Fact]
    public async Task Fetching_a_tree_goes_on_past_a_file_that_fails_and_exits_with_its_code()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-tree");
        cluster.Root.Write("t/a.bin", [1, 2, 3]);
        cluster.Root.Write("t/b.bin", [4, 5]);
        cluster.Root.Write("t/c.bin", [6]);
        // b.bin's place in the output is taken by a directory, so it cannot be written there.
        Directory.CreateDirectory(Path.Join(downloads.Path, "t", "b.bin", "in-the-way"));

        var run = await ClientProcess.RunAsync(output, ["-r", "t", "-o", downloads.Path, "--proxy", $"127.0.0.1:{cluster.OriginPort}"], deadline.Token);

        run.ExitCode.Should().NotBe(0);
        File.ReadAllBytes(downloads.Combine("t", "a.bin")).Should().Equal(1, 2, 3);
        File.ReadAllBytes(downloads.Combine("t", "c.bin")).Should().Equal(6);
        Encoding.UTF8.GetString(run.StandardOutput).Should().Contain("3 files: 2 fetched, 1 failed, 4 bytes (4 B) in ");
    }

    [Fact]
    public async Task A_walk_stops_at_its_depth_limit_on_a_symlink_loop_and_says_so()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("loop/f.txt", [1]);
        File.CreateSymbolicLink(cluster.Root.Combine("loop", "again"), ".");
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);

        var walk = await DirectoryTree.WalkAsync(client, SafeName.Create("loop"), new TreeLimits { MaxDepth = 3 }, cancellationToken: deadline.Token);

        walk.Error.Should().BeNull();
        walk.Files.Select(f => f.Name.Value).Should().Equal("loop/f.txt", "loop/again/f.txt", "loop/again/again/f.txt", "loop/again/again/again/f.txt");
        walk.Truncated.Should().Be("left out directories deeper than 3 levels (the first: loop/again/again/again/again)");
    }

    [Fact]
    public async Task A_walk_keeps_at_most_its_directory_limit_to_list_and_says_so()
    {
        // A hostile listing of endless subdirectory entries costs a few bytes each on the wire, a whole name in memory.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        for (var i = 0; i < 6; i++)
        {
            cluster.Root.Write($"wide/d{i}/f.txt", [(byte)i]);
        }
        await using var client = await cluster.ConnectOriginAsync(deadline.Token);

        var walk = await DirectoryTree.WalkAsync(client, SafeName.Create("wide"), new TreeLimits { MaxDirectories = 4 }, cancellationToken: deadline.Token);

        walk.Error.Should().BeNull();
        walk.Truncated.Should().Be("stopped after 4 directories");
        walk.Files.Should().BeEmpty("the walk stopped while reading the first listing, before any subdirectory");
    }

    private static void Mkfifo(string path)
    {
        mkfifo(path, Convert.ToInt32("644", 8)).Should().Be(0);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int mkfifo([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int mode);

    /// <summary>A peer that answers every request frame with the same bytes, the connection left open.</summary>
    private sealed class ScriptedPeer : IAsyncDisposable
    {
        /// <summary>What a version-1 server from before LIST sent back to one (captured from such a server): 0xFF /
        /// BadRequest "unknown opcode 0x06".</summary>
        public static readonly byte[] OlderServersAnswer = Convert.FromHexString("465001ff00000016020013756e6b6e6f776e206f70636f64652030783036");

        private readonly byte[] _answer;
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop;
        private readonly Task _loop;

        private ScriptedPeer(byte[] answer, CancellationToken cancellationToken)
        {
            _answer = answer;
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
            _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _loop = AcceptAsync(_stop.Token);
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public static ScriptedPeer Start(byte[] answer, CancellationToken cancellationToken) => new(answer, cancellationToken);

        private async Task AcceptAsync(CancellationToken cancellationToken)
        {
            var connections = new List<Task>();
            try
            {
                while (true)
                {
                    var socket = await _listener.AcceptSocketAsync(cancellationToken);
                    connections.Add(ServeAsync(socket, _answer, cancellationToken));
                }
            }
            catch (OperationCanceledException)
            {
            }
            await Task.WhenAll(connections);
        }

        private static async Task ServeAsync(Socket socket, byte[] answer, CancellationToken cancellationToken)
        {
            using (socket)
            {
                var header = new byte[ProtocolLimits.FrameHeaderLength];
                await using var stream = new NetworkStream(socket, ownsSocket: false);
                try
                {
                    while (true)
                    {
                        await stream.ReadExactlyAsync(header, cancellationToken);
                        var payload = new byte[System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4))];
                        await stream.ReadExactlyAsync(payload, cancellationToken);
                        await stream.WriteAsync(answer, cancellationToken);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or EndOfStreamException or IOException or SocketException)
                {
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _loop;
            _stop.Dispose();
        }
    }
}
