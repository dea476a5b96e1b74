using System.Diagnostics;
using System.Globalization;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Native;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.EndToEnd;

/// <summary>
/// Where <c>-o</c> points, as curl users expect: a regular file is replaced atomically, a device or FIFO is written
/// into and stays what it was, a symlink is written through. Standard output that goes away, a full disk or a missing
/// directory are local I/O errors (exit 7) in one line. Each runs the real client program.
/// </summary>
public sealed class ClientOutputTargetTests(ITestOutputHelper output)
{
    private const ushort FileTypeMask = 0xF000;
    private const ushort CharacterDevice = 0x2000;
    private const ushort Fifo = 0x1000;

    [SkippableFact]
    public async Task A_character_device_is_written_into_and_stays_a_device()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("big.bin", Fetch.RandomBytes(3_000_000, seed: 60));
        var device = downloads.Combine("null");
        Skip.IfNot(await RunToolAsync("mknod", device, "c", "1", "3") == 0, "mknod needs root (CAP_MKNOD) to make a /dev/null twin");

        var run = await RunAsync(cluster, deadline.Token, "big.bin", "-o", device);

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        TypeOf(device).Should().Be(CharacterDevice, "a device must never be replaced by a regular file");
        run.StandardError.Should().Contain("blake3 verified");
        downloads.Files().Should().BeEquivalentTo(["null"], "no temporary file is left beside the device");
    }

    [Fact]
    public async Task A_fifo_receives_the_exact_bytes_and_stays_a_fifo()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(3_000_000, seed: 61);
        cluster.Root.Write("big.bin", content);
        var fifo = downloads.Combine("pipe");
        (await RunToolAsync("mkfifo", fifo)).Should().Be(0);
        var reader = Task.Run(() => File.ReadAllBytes(fifo), deadline.Token);

        var run = await RunAsync(cluster, deadline.Token, "big.bin", "-o", fifo);

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        (await reader.WaitAsync(deadline.Token)).Should().Equal(content);
        TypeOf(fifo).Should().Be(Fifo);
    }

    [Fact]
    public async Task A_symlink_is_written_through_and_stays_a_symlink()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(500_000, seed: 62);
        cluster.Root.Write("a.bin", content);
        var target = downloads.Write("target.bin", "previous"u8.ToArray());
        var link = downloads.Combine("link");
        File.CreateSymbolicLink(link, "target.bin");
        var dangling = downloads.Combine("dangling");
        File.CreateSymbolicLink(dangling, "new.bin");

        var onLink = await RunAsync(cluster, deadline.Token, "a.bin", "-o", link);
        var onDangling = await RunAsync(cluster, deadline.Token, "a.bin", "-o", dangling);

        onLink.ExitCode.Should().Be(ExitCodes.Success, onLink.StandardError);
        onDangling.ExitCode.Should().Be(ExitCodes.Success, onDangling.StandardError);
        new FileInfo(link).LinkTarget.Should().Be("target.bin");
        new FileInfo(dangling).LinkTarget.Should().Be("new.bin");
        File.ReadAllBytes(target).Should().Equal(content);
        File.ReadAllBytes(downloads.Combine("new.bin")).Should().Equal(content);
        downloads.Files().Should().BeEquivalentTo("target.bin", "link", "dangling", "new.bin");
    }

    [Fact]
    public async Task Dev_stdout_carries_the_bytes_and_the_result_line_goes_to_standard_error()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(2_000_000, seed: 63);
        cluster.Root.Write("a.bin", content);

        var run = await RunAsync(cluster, deadline.Token, "a.bin", "-o", "/dev/stdout");

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        run.StandardOutput.Should().Equal(content);
        run.StandardError.Should().Contain("blake3 verified");
    }

    [Fact]
    public async Task Dev_stdout_onto_a_file_opened_for_appending_appends()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(300_000, seed: 67);
        cluster.Root.Write("a.bin", content);
        var log = downloads.Write("app.log", "a longer line that was there before\n"u8.ToArray());

        var run = await ClientProcess.RunAsync(output, ["a.bin", "-p", Proxy(cluster), "-o", "/dev/stdout"], deadline.Token,
            redirect: $">> '{log}'");

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        File.ReadAllBytes(log).Should().Equal([.. "a longer line that was there before\n"u8.ToArray(), .. content]);
    }

    [Fact]
    public async Task Standard_output_onto_a_file_leaves_its_offset_after_the_bytes()
    {
        // What the shell writes next to the same open file goes after the download, not over it.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(300_000, seed: 68);
        cluster.Root.Write("a.bin", content);
        var file = downloads.Combine("out.bin");
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("{ \"$0\" \"$1\" a.bin -p \"$2\" -o - -q && \"$0\" \"$1\" a.bin -p \"$2\" -o /dev/stdout -q && echo END; } > \"$3\"");
        start.ArgumentList.Add(dotnet);
        start.ArgumentList.Add(Path.Join(AppContext.BaseDirectory, "FileProxy.Client.dll"));
        start.ArgumentList.Add(Proxy(cluster));
        start.ArgumentList.Add(file);
        using var shell = Process.Start(start)!;
        var errors = await shell.StandardError.ReadToEndAsync(deadline.Token);
        await shell.WaitForExitAsync(deadline.Token);

        shell.ExitCode.Should().Be(0, errors);
        File.ReadAllBytes(file).Should().Equal([.. content, .. content, .. "END\n"u8.ToArray()]);
    }

    [Fact]
    public async Task Dev_fd_n_onto_a_pipe_is_written_through_that_descriptor()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(300_000, seed: 69);
        cluster.Root.Write("a.bin", content);

        var run = await ClientProcess.RunAsync(output, ["a.bin", "-p", Proxy(cluster), "-o", "/dev/fd/3"], deadline.Token, redirect: "3>&1");

        run.ExitCode.Should().Be(ExitCodes.Success, run.StandardError);
        run.StandardOutput.Should().Equal(content);
    }

    [Fact]
    public async Task A_fifo_nobody_reads_gives_up_at_max_time_and_stays_a_fifo()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("a.bin", Fetch.RandomBytes(1_000, seed: 70));
        var fifo = downloads.Combine("pipe");
        (await RunToolAsync("mkfifo", fifo)).Should().Be(0);

        var run = await RunAsync(cluster, deadline.Token, "a.bin", "-o", fifo, "--max-time", "1s");

        run.ExitCode.Should().NotBe(ExitCodes.Success);
        run.StandardError.Should().Contain("--max-time");
        TypeOf(fifo).Should().Be(Fifo);
    }

    [SkippableFact]
    public async Task Two_proxies_write_into_a_device_fifo_or_symlink_and_leave_each_what_it_was()
    {
        // Multipath writes out of order into a file renamed into place: a device or FIFO gets one path instead, and a
        // symlink's target is replaced, never the link.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var cluster = await Cluster.StartAsync(output);
        using var downloads = new TempDirectory("fileproxy-out");
        var content = Fetch.RandomBytes(3_000_000, seed: 71);
        cluster.Root.Write("big.bin", content);
        var fifo = downloads.Combine("pipe");
        (await RunToolAsync("mkfifo", fifo)).Should().Be(0);
        downloads.Write("target.bin", "previous"u8.ToArray());
        var link = downloads.Combine("link");
        File.CreateSymbolicLink(link, "target.bin");
        var device = downloads.Combine("null");
        Skip.IfNot(await RunToolAsync("mknod", device, "c", "1", "3") == 0, "mknod needs root (CAP_MKNOD) to make a /dev/null twin");
        Task<ClientRun> Both(string target) =>
            ClientProcess.RunAsync(output, ["big.bin", "-p", Proxy(cluster), "-p", Proxy(cluster), "-o", target], deadline.Token);

        var reader = Task.Run(() => File.ReadAllBytes(fifo), deadline.Token);
        var onFifo = await Both(fifo);
        var onLink = await Both(link);
        var onDevice = await Both(device);

        onFifo.ExitCode.Should().Be(ExitCodes.Success, onFifo.StandardError);
        (await reader.WaitAsync(deadline.Token)).Should().Equal(content);
        TypeOf(fifo).Should().Be(Fifo);
        onLink.ExitCode.Should().Be(ExitCodes.Success, onLink.StandardError);
        new FileInfo(link).LinkTarget.Should().Be("target.bin");
        File.ReadAllBytes(downloads.Combine("target.bin")).Should().Equal(content);
        onDevice.ExitCode.Should().Be(ExitCodes.Success, onDevice.StandardError);
        TypeOf(device).Should().Be(CharacterDevice);
        downloads.Files().Should().BeEquivalentTo(["pipe", "target.bin", "link", "null"], "no temporary file is left behind");
    }

    [Fact]
    public async Task Standard_output_closed_by_its_reader_is_a_local_io_error_never_verified()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("big.bin", Fetch.RandomBytes(20_000_000, seed: 64));

        var run = await ClientProcess.RunAsync(output, ["big.bin", "-p", Proxy(cluster), "-o", "-"], deadline.Token, readStdoutBytes: 10);

        run.ExitCode.Should().Be(ExitCodes.LocalIoError, "curl exits 23 here; ours documents 7 for local I/O errors");
        run.StandardError.Should().NotContain("verified").And.Contain("broken pipe");
        run.Lines().Should().ContainSingle("one clear line, no stack trace");
    }

    [Fact]
    public async Task A_full_device_on_standard_output_is_exit_7_in_one_line()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("a.bin", Fetch.RandomBytes(1_000_000, seed: 65));

        var run = await ClientProcess.RunAsync(output, ["a.bin", "-p", Proxy(cluster), "-o", "-"], deadline.Token, redirect: "> /dev/full");

        run.ExitCode.Should().Be(ExitCodes.LocalIoError);
        run.Lines().Should().ContainSingle().Which.Should().Contain("no space left on device");
    }

    [Theory]
    [InlineData("nodir/x.jpg", "no such directory")]
    [InlineData("/proc/x.jpg", "cannot be created")]
    public async Task An_output_that_cannot_be_created_is_exit_7_in_one_line(string target, string reason)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output);
        cluster.Root.Write("a.bin", Fetch.RandomBytes(1_000, seed: 66));

        var run = await RunAsync(cluster, deadline.Token, "a.bin", "-o", target);

        run.ExitCode.Should().Be(ExitCodes.LocalIoError);
        run.Lines().Should().ContainSingle().Which.Should().Contain(reason).And.NotContain(".part");
    }

    private static string Proxy(Cluster cluster) => $"127.0.0.1:{cluster.ProxyPort.ToString(CultureInfo.InvariantCulture)}";

    private Task<ClientRun> RunAsync(Cluster cluster, CancellationToken cancellationToken, params string[] args) =>
        ClientProcess.RunAsync(output, [.. args, "-p", Proxy(cluster)], cancellationToken);

    private static ushort TypeOf(string path)
    {
        var link = new FileInfo(path).LinkTarget;
        link.Should().BeNull("the output must not have been turned into a symlink");
        Posix.TryStat(path, out var status).Should().Be(0);
        return (ushort)(status.Mode & FileTypeMask);
    }

    private static async Task<int> RunToolAsync(string tool, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(tool, args) { RedirectStandardError = true, UseShellExecute = false })!;
        await process.WaitForExitAsync();
        return process.ExitCode;
    }
}
