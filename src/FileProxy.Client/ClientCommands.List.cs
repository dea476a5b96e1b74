using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Hosting;
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

    /// <summary>Fetches every file of a directory tree through the batch download (<see cref="RunBatchAsync"/>), keeping
    /// the names' subdirectories under <paramref name="outputDirectory"/> (the current directory by default).</summary>
    private static async Task<int> FetchTreeAsync(ParseResult parse, string raw, string? outputDirectory, int workers, bool flat,
        OutputMode mode, CancellationToken cancellationToken)
    {
        if (!TryDirectory(raw, out var directory, out var error))
        {
            await Console.Error.WriteLineAsync($"error: refusing directory '{EscapingEnricher.Escape(raw)}': {error}");
            return ExitCodes.Refused;
        }
        if (outputDirectory is not null && File.Exists(outputDirectory))
        {
            await Console.Error.WriteLineAsync($"error: -o {EscapingEnricher.Escape(outputDirectory)}: with -r, -o names a directory, and this is a file");
            return ExitCodes.UsageError;
        }
        List<string>? names = null;
        var walked = await WithOptionsAsync(parse, async (options, limited) =>
        {
            var peer = parse.GetValue(Proxy)![0];
            await using var client = await FileClient.ConnectAsync(peer.Host, peer.Port, options, limited);
            var walk = await DirectoryTree.WalkAsync(client, directory, skipped: ReportSkipped, cancellationToken: limited);
            if (walk.Error is { } failed)
            {
                return await FailedAsync(failed);
            }
            ReportTruncated(walk);
            names = [.. walk.Files.Select(file => file.Name.Value)];
            return ExitCodes.Success;
        }, cancellationToken);
        if (walked != ExitCodes.Success || names is null)
        {
            return walked;
        }
        return await RunBatchAsync(parse, names, outputDirectory ?? "", flat, workers, mode, cancellationToken);
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
