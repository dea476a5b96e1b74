using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Tools;

/// <summary>
/// docs/wireshark/fileproxy.lua decodes a real capture: tshark records transfers through a real proxy and origin on
/// loopback, and the fields it decodes must be the ones that were sent (names, sizes, version tags, digests,
/// sources, and body bytes that add up to each body's length).
/// </summary>
public sealed partial class WiresharkDissectorTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task The_dissector_decodes_every_field_of_a_captured_transfer()
    {
        Skip.If(Which("tshark") is null, "tshark is not installed (apt-get install tshark; .ci/run installs it)");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var cluster = await Cluster.StartAsync(output);
        using var work = new TempDirectory("fileproxy-capture");
        var content = Fetch.RandomBytes(700_000, seed: 120);
        cluster.Root.Write("dir/cap ture.bin", content);
        var capture = work.Combine("capture.pcapng");
        var ports = $"tcp port {cluster.ProxyPort.ToString(CultureInfo.InvariantCulture)} or tcp port {cluster.OriginPort.ToString(CultureInfo.InvariantCulture)}";

        using (var tshark = await StartCaptureAsync(capture, ports, deadline.Token))
        {
            // "Capturing on" can come before packets are really recorded: knock (connect, close) until one is.
            await Poll.UntilAsync(async () =>
            {
                using (var knock = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp))
                {
                    await knock.ConnectAsync(System.Net.IPAddress.Loopback, cluster.ProxyPort, deadline.Token);
                }
                return await PacketsInAsync(capture, deadline.Token) > 0;
            }, "the capture records packets", deadline.Token);
            await using var client = await cluster.ConnectProxyAsync(deadline.Token);
            (await Fetch.GetAsync(client, "dir/cap ture.bin", deadline.Token)).Body.Should().Equal(content);
            await cluster.WaitForFillsAsync(deadline.Token);
            (await Fetch.GetAsync(client, "dir/cap ture.bin", deadline.Token, offset: 1000, length: 5000)).Body.Should().HaveCount(5000);
            (await client.StatAsync("missing.bin", deadline.Token)).IsOk.Should().BeFalse();
            (await client.StatsAsync(deadline.Token)).IsOk.Should().BeTrue();
            // The capture writes what it saw a little after it happened: wait until the last answer is in the file.
            // (Read while being written, the file may end mid-packet: tshark then says so and exits 2; poll on.)
            await Poll.UntilAsync(async () => (await DecodeAsync(capture, strict: false, [cluster.ProxyPort, cluster.OriginPort], deadline.Token))
                .Any(f => f.Opcode == "0x83"), "the capture holds the last answer", deadline.Token);
            await StopCaptureAsync(tshark, deadline.Token);
        }
        await using var stat = await cluster.ConnectOriginAsync(deadline.Token);
        var file = (await stat.StatAsync("dir/cap ture.bin", deadline.Token)).File!;

        var frames = await DecodeAsync(capture, strict: true, [cluster.ProxyPort, cluster.OriginPort], deadline.Token);

        var gets = frames.Where(f => f.Opcode == "0x01").ToList();
        gets.Select(f => f.Name).Should().Contain("dir/cap ture.bin");
        var okHeads = frames.Where(f => f.Opcode == "0x81" && f.Status == "0").ToList();
        okHeads.Should().HaveCount(3, "the proxy's miss, the origin's answer to its fill, and the proxy's range");
        okHeads.Should().OnlyContain(f => f.Size == "700000" && f.VersionTag == file.Version
            && string.Equals(f.Digest, file.Digest.ToString(), StringComparison.OrdinalIgnoreCase));
        okHeads.Select(f => f.Source).Should().BeEquivalentTo(["0", "2", "1"], "origin, cache miss, cache hit");
        okHeads.Select(f => f.BodyLength).Should().BeEquivalentTo(["700000", "700000", "5000"]);
        frames.Where(f => f.Opcode == "0x82").Select(f => f.Status).Should().Equal(["1", "1"], "NotFound from the origin, relayed by the proxy");
        frames.Should().Contain(f => f.Opcode == "0x83" && f.Status == "0");
        var bodyBytesByDirection = frames.Where(f => f.BodyBytes > 0).GroupBy(f => f.Direction).ToDictionary(g => g.Key, g => g.Sum(f => f.BodyBytes));
        bodyBytesByDirection.Values.Sum().Should().Be(700_000 + 700_000 + 5_000, "every body byte is decoded as a body, none as a frame");
    }

    [SkippableFact]
    public async Task The_dissector_decodes_a_captured_listing_entry_by_entry()
    {
        Skip.If(Which("tshark") is null, "tshark is not installed (apt-get install tshark; .ci/run installs it)");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var cluster = await Cluster.StartAsync(output);
        using var work = new TempDirectory("fileproxy-capture");
        cluster.Root.Write("d/a file.bin", [1, 2, 3, 4, 5]);
        cluster.Root.Write("d/sub/x", [1]);
        var capture = work.Combine("capture.pcapng");
        int[] ports = [cluster.ProxyPort, cluster.OriginPort];
        string[] fields = ["fileproxy.opcode", "fileproxy.directory", "fileproxy.cursor", "fileproxy.limit", "fileproxy.status",
            "fileproxy.entry_count", "fileproxy.entry_type", "fileproxy.entry_name", "fileproxy.entry_size", "fileproxy.entry_version",
            "fileproxy.next_cursor"];

        using (var tshark = await StartCaptureAsync(capture, $"tcp port {ports[0]} or tcp port {ports[1]}", deadline.Token))
        {
            await Poll.UntilAsync(async () =>
            {
                using (var knock = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp))
                {
                    await knock.ConnectAsync(System.Net.IPAddress.Loopback, cluster.ProxyPort, deadline.Token);
                }
                return await PacketsInAsync(capture, deadline.Token) > 0;
            }, "the capture records packets", deadline.Token);
            await using var client = await cluster.ConnectProxyAsync(deadline.Token);
            (await client.ListAsync("d", cancellationToken: deadline.Token)).IsOk.Should().BeTrue();
            (await client.ListAsync("d", "", 1, deadline.Token)).Listing!.Next.Should().Be("a file.bin");
            (await client.ListAsync("d", "a file.bin", 0, deadline.Token)).Listing!.Entries.Should().ContainSingle();
            await Poll.UntilAsync(async () => (await FieldsAsync(capture, strict: false, ports, fields, deadline.Token))
                .Count(line => line[0] == "0x86") == 6, "the capture holds the last answer", deadline.Token);
            await StopCaptureAsync(tshark, deadline.Token);
        }
        await using var origin = await cluster.ConnectOriginAsync(deadline.Token);
        var version = (await origin.StatAsync("d/a file.bin", deadline.Token)).File!.Version;

        var lines = await FieldsAsync(capture, strict: true, ports, fields, deadline.Token);

        var requests = lines.Where(line => line[0] == "0x06").Select(line => string.Join('|', line[1..4])).ToList();
        requests.Should().Equal(["d||0", "d||1000", "d||1", "d||1", "d|a file.bin|0", "d|a file.bin|1000"],
            "each LIST, client to proxy, then proxy to origin with the limit the proxy took (0: the most, 1000)");
        var answers = lines.Where(line => line[0] == "0x86").Select(line => string.Join('|', line[4..])).ToList();
        answers.Should().Equal([
            $"0|2|1;2|a file.bin;sub|5;0|{version};|", $"0|2|1;2|a file.bin;sub|5;0|{version};|",
            $"0|1|1|a file.bin|5|{version}|a file.bin", $"0|1|1|a file.bin|5|{version}|a file.bin",
            "0|1|2|sub|0||", "0|1|2|sub|0||"]);
    }

    /// <summary>The given fields of every FileProxy frame, one frame per packet (each LIST and its answer go in one).</summary>
    private static async Task<List<string[]>> FieldsAsync(string file, bool strict, int[] ports, string[] fields, CancellationToken cancellationToken)
    {
        var dissector = Repository.Combine("docs", "wireshark", "fileproxy.lua");
        var start = new ProcessStartInfo("tshark") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        List<string> args = ["-r", file, "-X", $"lua_script:{dissector}", "-Y", "fileproxy", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=;"];
        foreach (var port in ports)
        {
            args.AddRange(["-d", $"tcp.port=={port.ToString(CultureInfo.InvariantCulture)},fileproxy"]);
        }
        foreach (var field in fields)
        {
            args.AddRange(["-e", field]);
        }
        foreach (var argument in args)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var text = await process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (strict)
        {
            process.ExitCode.Should().Be(0, errors);
        }
        return [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split('|'))];
    }

    private sealed record Decoded(string Direction, string Opcode, string Name, string Status, string Size, string VersionTag,
        string Digest, string BodyLength, string Source, long BodyBytes);

    private async Task<Process> StartCaptureAsync(string file, string filter, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("tshark") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in (string[])["-i", "lo", "-f", filter, "-w", file, "-q", "-B", "64"])
        {
            start.ArgumentList.Add(argument);
        }
        var process = Process.Start(start)!;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.ErrorDataReceived += (_, line) =>
        {
            if (line.Data is { } text)
            {
                output.WriteLine($"[tshark] {text}");
                if (text.Contains("Capturing on", StringComparison.Ordinal))
                {
                    ready.TrySetResult();
                }
            }
        };
        process.BeginErrorReadLine();
        await ready.Task.WaitAsync(cancellationToken);
        return process;
    }

    private static async Task StopCaptureAsync(Process tshark, CancellationToken cancellationToken)
    {
        kill(tshark.Id, 2).Should().Be(0); // SIGINT: tshark flushes and closes the file
        await tshark.WaitForExitAsync(cancellationToken);
    }

    private static async Task<List<Decoded>> DecodeAsync(string file, bool strict, int[] ports, CancellationToken cancellationToken)
    {
        var dissector = Repository.Combine("docs", "wireshark", "fileproxy.lua");
        var start = new ProcessStartInfo("tshark") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        List<string> args = ["-r", file, "-X", $"lua_script:{dissector}", "-Y", "fileproxy", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=;"];
        foreach (var port in ports)
        {
            args.AddRange(["-d", $"tcp.port=={port.ToString(CultureInfo.InvariantCulture)},fileproxy"]);
        }
        foreach (var field in (string[])["tcp.srcport", "fileproxy.opcode", "fileproxy.name", "fileproxy.status", "fileproxy.size",
            "fileproxy.version_tag", "fileproxy.digest", "fileproxy.body_length", "fileproxy.source", "fileproxy.body"])
        {
            args.AddRange(["-e", field]);
        }
        foreach (var argument in args)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var text = await process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (strict)
        {
            process.ExitCode.Should().Be(0, errors);
        }
        // One line per packet; a packet can hold several frames (fields joined with ';') and body pieces.
        List<Decoded> frames = [];
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var c = line.Split('|');
            var opcodes = Split(c[1]);
            var names = new Queue<string>(Split(c[2]));
            var statuses = new Queue<string>(Split(c[3]));
            var sizes = new Queue<string>(Split(c[4]));
            var tags = new Queue<string>(Split(c[5]));
            var digests = new Queue<string>(Split(c[6]));
            var lengths = new Queue<string>(Split(c[7]));
            var sources = new Queue<string>(Split(c[8]));
            var bodyBytes = Split(c[9]).Sum(hex => (long)hex.Replace(":", "", StringComparison.Ordinal).Length / 2);
            foreach (var opcode in opcodes)
            {
                var request = opcode is "0x01" or "0x02" or "0x04";
                var okHead = opcode is "0x81" or "0x82";
                var status = request || opcode == "0x03" ? "" : statuses.Dequeue();
                var ok = okHead && status == "0";
                frames.Add(new Decoded(c[0], opcode,
                    request ? names.Dequeue() : "",
                    status,
                    ok ? sizes.Dequeue() : "",
                    ok ? tags.Dequeue() : "",
                    ok ? digests.Dequeue().Replace(":", "", StringComparison.Ordinal) : "",
                    ok && opcode == "0x81" ? lengths.Dequeue() : "",
                    ok ? sources.Dequeue() : "",
                    0));
            }
            if (bodyBytes > 0)
            {
                frames.Add(new Decoded(c[0], "body", "", "", "", "", "", "", "", bodyBytes));
            }
        }
        return frames;
    }

    private static async Task<int> PacketsInAsync(string file, CancellationToken cancellationToken)
    {
        if (!File.Exists(file))
        {
            return 0;
        }
        using var process = Process.Start(new ProcessStartInfo("tshark", ["-r", file, "-T", "fields", "-e", "frame.number"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        var text = await process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
    }

    private static string[] Split(string field) => field.Length == 0 ? [] : field.Split(';');

    private static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(dir => Path.Join(dir, program)).FirstOrDefault(File.Exists);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
