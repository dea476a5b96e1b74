using System.Diagnostics;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Hosting;
using Serilog;

namespace FileProxy.Client;

/// <summary>One file of a batch: the name as given, and either where it goes or why it is refused.</summary>
internal sealed record BatchItem(string Given, SafeName? Name, string? Target, string? Refusal);

/// <summary>
/// Many files in one run (<c>client a b c</c>, <c>-i FILE</c>): the names are planned into output paths under one
/// directory, fetched by up to --parallel workers, each file by one call of a per-file fetch (the same download a
/// single name runs), and summed up in one line. A refused or failed file fails alone: the others are still
/// fetched, and the exit code is that of the first failed file in the order given (0 when none failed).
/// </summary>
internal static class Batch
{
    /// <summary>Fetches one planned file, showing its progress on <paramref name="progress"/> (may be null).</summary>
    public delegate Task<DownloadResult> FetchOne(BatchItem item, IDownloadProgress? progress, CancellationToken cancellationToken);

    /// <summary>Reads names one per line from a file, or from standard input for "-". Empty lines are skipped and a
    /// line's trailing CR is dropped (lists written on Windows); anything else is a name, spaces included.</summary>
    public static async Task<List<string>> ReadNamesAsync(string path, CancellationToken cancellationToken)
    {
        using var reader = path == "-" ? new StreamReader(Console.OpenStandardInput()) : new StreamReader(path);
        var names = new List<string>();
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            line = line.TrimEnd('\r');
            if (line.Length > 0)
            {
                names.Add(line);
            }
        }
        return names;
    }

    /// <summary>Where each name goes under <paramref name="directory"/>: its whole relative path, or only its last
    /// segment with <paramref name="flat"/>. A name given twice is fetched once. Returns an error (and no plan) when
    /// two different names would be written to the same path.</summary>
    public static (List<BatchItem> Items, string? Conflict) Plan(IEnumerable<string> names, string directory, bool flat)
    {
        var items = new List<BatchItem>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var byTarget = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var given in names)
        {
            if (!seen.Add(given))
            {
                continue;
            }
            if (!SafeName.TryCreate(given, out var name, out var error))
            {
                items.Add(new BatchItem(given, null, null, $"refusing name '{EscapingEnricher.Escape(given)}': {error}"));
                continue;
            }
            var target = Path.Join(directory, flat ? name.FileName : name.RelativePath);
            if (byTarget.TryGetValue(target, out var other))
            {
                return ([], $"'{EscapingEnricher.Escape(other)}' and '{EscapingEnricher.Escape(given)}' would both be written to {target}{(flat ? " (--flat keeps only the last segment)" : "")}");
            }
            byTarget[target] = given;
            items.Add(new BatchItem(given, name, target, null));
        }
        return (items, null);
    }

    /// <summary>Fetches every item, at most <paramref name="parallel"/> at once, and prints each outcome and the
    /// summary; returns the exit code (that of the first failed item in order, or 0).</summary>
    public static async Task<int> RunAsync(IReadOnlyList<BatchItem> items, int parallel, FetchOne fetch, ClientOutput output,
        CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        var results = new DownloadResult[items.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, items.Count),
            new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = cancellationToken },
            async (index, token) =>
            {
                var item = items[index];
                if (item.Name is null)
                {
                    results[index] = new DownloadResult(ExitCodes.Refused, item.Refusal!);
                    output.Refused(item.Given, item.Refusal!);
                    return;
                }
                var progress = output.Begin(item.Given);
                results[index] = await FetchSafelyAsync(item, progress, fetch, token);
                output.Finished(item.Given, item.Target, false, results[index], progress);
            });
        var failed = results.Count(result => result.ExitCode != ExitCodes.Success);
        output.Summary(items.Count, failed, results.Sum(result => result.ExitCode == ExitCodes.Success ? result.Bytes : 0), stopwatch.Elapsed);
        return results.FirstOrDefault(result => result.ExitCode != ExitCodes.Success)?.ExitCode ?? ExitCodes.Success;
    }

    /// <summary>One file, its failures (the connection's included) turned into its result so that the others go on.
    /// Cancellation (Ctrl+C, --max-time) ends the whole batch.</summary>
    private static async Task<DownloadResult> FetchSafelyAsync(BatchItem item, IDownloadProgress? progress, FetchOne fetch,
        CancellationToken cancellationToken)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(item.Target!))!);
            return await fetch(item, progress, cancellationToken);
        }
        catch (UpstreamException e)
        {
            return new DownloadResult(e.Status is { } status ? ExitCodes.For(status) : ExitCodes.NetworkError, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new DownloadResult(ExitCodes.LocalIoError, $"cannot write {item.Target}: {e.Message}");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.Error(e, "Unexpected failure fetching {Name}", item.Given);
            return new DownloadResult(ExitCodes.InternalError, e.Message);
        }
    }
}
