using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Hosting;
using FileProxy.Protocol.Wire;

namespace FileProxy.Client;

/// <summary>'list' and 'get -r': a directory's entries, and fetching a directory tree.</summary>
internal static partial class ClientCommands
{
    private static Command ListCommand()
    {
        var directory = new Argument<string>("DIR")
        {
            Description = "Directory to list: a relative path, '/' between directories (default: the root; '.' too)",
            Arity = ArgumentArity.ZeroOrOne,
            DefaultValueFactory = _ => "",
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per entry and line (name, path, type, size, version)" };
        var recursive = new Option<bool>("--recursive", "-r") { Description = "List the files of every subdirectory too, by their whole names" };
        var command = new Command("list", "List a directory's files (size, name) and subdirectories") { directory, json, recursive };
        AddPeerOptions(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var raw = parse.GetValue(directory)!;
            if (!TryDirectory(raw, out var safeDirectory, out var error))
            {
                await Console.Error.WriteLineAsync($"error: refusing directory '{EscapingEnricher.Escape(raw)}': {error}");
                return ExitCodes.Refused;
            }
            var asJson = parse.GetValue(json);
            return await WithClientAsync(parse, async (client, limited) =>
            {
                using var stdout = Console.OpenStandardOutput();
                if (parse.GetValue(recursive))
                {
                    var walk = await DirectoryTree.WalkAsync(client, safeDirectory, skipped: ReportSkipped, cancellationToken: limited);
                    if (walk.Error is { } failed)
                    {
                        return await FailedAsync(failed);
                    }
                    foreach (var file in walk.Files)
                    {
                        await WriteEntryAsync(stdout, new ListEntry(file.Name.FileName, EntryType.File, file.Size, file.Version), file.Name.Value, asJson, limited);
                    }
                    ReportTruncated(walk);
                    return ExitCodes.Success;
                }
                var cursor = "";
                do
                {
                    var head = await client.ListAsync(safeDirectory?.Value ?? "", cursor, 0, limited);
                    if (!head.IsOk)
                    {
                        return await FailedAsync(head);
                    }
                    foreach (var entry in head.Listing!.Entries)
                    {
                        var path = safeDirectory is null ? entry.Name : safeDirectory.Value + "/" + entry.Name;
                        await WriteEntryAsync(stdout, entry, path, asJson, limited);
                    }
                    cursor = head.Listing.Next;
                }
                while (cursor.Length > 0);
                return ExitCodes.Success;
            }, cancellationToken);
        });
        return command;
    }

    /// <summary>'' and '.' are the root; anything else follows the name rules.</summary>
    private static bool TryDirectory(string raw, out SafeName? directory, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        directory = null;
        error = null;
        return raw is "" or "." || SafeName.TryCreate(raw, out directory, out error);
    }

    /// <summary>One entry: <c>-  SIZE  NAME</c> for a file, <c>d  -  NAME/</c> for a directory, as <c>ls -l</c> would
    /// put them; or one JSON object on its own line.</summary>
    private static async Task WriteEntryAsync(Stream stdout, ListEntry entry, string path, bool asJson, CancellationToken cancellationToken)
    {
        if (asJson)
        {
            using var buffer = new MemoryStream();
            await using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                writer.WriteString("name", entry.Name);
                writer.WriteString("path", path);
                writer.WriteString("type", entry.Type == EntryType.Directory ? "directory" : "file");
                writer.WriteNumber("size", entry.Size);
                writer.WriteString("version", entry.Version);
                writer.WriteEndObject();
            }
            buffer.WriteByte((byte)'\n');
            await stdout.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), cancellationToken);
            return;
        }
        var line = entry.Type == EntryType.Directory
            ? string.Create(CultureInfo.InvariantCulture, $"d {"-",14}  {EscapingEnricher.Escape(path)}/\n")
            : string.Create(CultureInfo.InvariantCulture, $"- {entry.Size,14}  {EscapingEnricher.Escape(path)}\n");
        await stdout.WriteAsync(System.Text.Encoding.UTF8.GetBytes(line), cancellationToken);
    }

    /// <summary>Fetches every file of a directory tree, keeping the names' subdirectories under
    /// <paramref name="outputDirectory"/> (the current directory by default).</summary>
    private static Task<int> FetchTreeAsync(ParseResult parse, string raw, string? outputDirectory, CancellationToken cancellationToken)
    {
        if (!TryDirectory(raw, out var directory, out var error))
        {
            Console.Error.WriteLine($"error: refusing directory '{EscapingEnricher.Escape(raw)}': {error}");
            return Task.FromResult(ExitCodes.Refused);
        }
        if (outputDirectory is not null && File.Exists(outputDirectory))
        {
            Console.Error.WriteLine($"error: -o {EscapingEnricher.Escape(outputDirectory)}: with -r, -o names a directory, and this is a file");
            return Task.FromResult(ExitCodes.UsageError);
        }
        return WithOptionsAsync(parse, async (options, limited) =>
        {
            var peer = parse.GetValue(Proxy)![0];
            IReadOnlyList<SafeName> names;
            await using (var client = await FileClient.ConnectAsync(peer.Host, peer.Port, options, limited))
            {
                var walk = await DirectoryTree.WalkAsync(client, directory, skipped: ReportSkipped, cancellationToken: limited);
                if (walk.Error is { } failed)
                {
                    return await FailedAsync(failed);
                }
                ReportTruncated(walk);
                names = [.. walk.Files.Select(file => file.Name)];
            }
            // The one place the names are fetched: the batch download takes this list as it is.
            return await FetchEachAsync(peer, options, names, outputDirectory ?? ".", limited);
        }, cancellationToken);
    }

    /// <summary>Fetches <paramref name="names"/> one after another on one connection (a new one after a failure cut
    /// it), each to its name under <paramref name="outputDirectory"/>; one line per file and a summary. The exit
    /// code is the first failure's, so it says whether any failed.</summary>
    private static async Task<int> FetchEachAsync(PeerAddress peer, FileClientOptions options, IReadOnlyList<SafeName> names,
        string outputDirectory, CancellationToken cancellationToken)
    {
        var exitCode = ExitCodes.Success;
        var failed = 0;
        long bytes = 0;
        FileClient? client = null;
        try
        {
            foreach (var name in names)
            {
                var target = Path.Join(outputDirectory, name.RelativePath);
                DownloadResult result;
                try
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(target))!);
                    if (client is { IsReusable: false })
                    {
                        await client.DisposeAsync();
                        client = null;
                    }
                    client ??= await FileClient.ConnectAsync(peer.Host, peer.Port, options, cancellationToken);
                    result = await Download.ToPathAsync(client, name, target, 0, ProtocolLimits.ToEnd, cancellationToken);
                }
                catch (UpstreamException e)
                {
                    result = new DownloadResult(e.Status is { } status ? ExitCodes.For(status) : ExitCodes.NetworkError, e.Message);
                }
                catch (IOException e)
                {
                    result = new DownloadResult(ExitCodes.LocalIoError, $"cannot write {target}: {e.Message}");
                }
                Report(name, target, false, result, null, null);
                if (result.ExitCode != ExitCodes.Success)
                {
                    failed++;
                    exitCode = exitCode == ExitCodes.Success ? result.ExitCode : exitCode;
                }
                bytes += result.Bytes;
            }
        }
        finally
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{names.Count - failed} of {names.Count} files fetched, {bytes} bytes ({Units.FormatBytes(bytes)}){(failed > 0 ? $", {failed} failed" : "")}"));
        return exitCode;
    }

    private static async Task<int> FailedAsync(ResponseHead head)
    {
        await Console.Error.WriteLineAsync($"error: {head.Status}: {EscapingEnricher.Escape(head.Message)}");
        return ExitCodes.For(head.Status);
    }

    private static void ReportSkipped(string directory, ResponseHead head) =>
        Console.Error.WriteLine($"warning: cannot list '{EscapingEnricher.Escape(directory)}': {head.Status}: {EscapingEnricher.Escape(head.Message)}");

    private static void ReportTruncated(TreeWalk walk)
    {
        if (walk.Truncated is { } why)
        {
            Console.Error.WriteLine($"warning: the tree is not complete: {why}");
        }
    }
}
