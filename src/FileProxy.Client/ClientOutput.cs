using System.Globalization;
using System.Text.Json;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Client.Multipath;
using FileProxy.Hosting;
using FileProxy.Protocol.Wire;

namespace FileProxy.Client;

/// <summary>How much the client says: everything, errors only (--quiet), or JSON objects for scripts (--json).</summary>
internal enum OutputMode
{
    Normal,
    Quiet,
    Json,
}

/// <summary>
/// Everything the get command prints besides the bytes: a progress bar per file while it runs (only in the normal
/// mode, and only when standard error is a terminal), one line or JSON object per finished file, a summary line
/// after a batch, and error lines. Result lines go to standard output, or to standard error when the bytes
/// themselves went to standard output, a device or a FIFO. While bars are shown, lines for the same terminal are
/// printed through the bars' console, above them, so that neither garbles the other.
/// </summary>
internal sealed class ClientOutput : IAsyncDisposable
{
    private readonly OutputMode _mode;
    private readonly TerminalProgress? _bars;
    private readonly Lock _lock = new();

    private ClientOutput(OutputMode mode, TerminalProgress? bars)
    {
        _mode = mode;
        _bars = bars;
    }

    /// <summary>Starts the output of one run; bars only in the normal mode on a terminal (standard error), and not
    /// when <paramref name="bars"/> is false.</summary>
    public static ClientOutput Start(OutputMode mode, bool bars = true) =>
        new(mode, bars && mode == OutputMode.Normal && !Console.IsErrorRedirected ? TerminalProgress.Start() : null);

    /// <summary>A file starts: its bar, or null when none is shown.</summary>
    public IDownloadProgress? Begin(string name) => _bars?.Add(name);

    /// <summary>A file ended: its bar goes, its line or JSON object is printed (an error line on failure, in every
    /// mode).</summary>
    public void Finished(string name, string? target, bool toStdout, DownloadResult result, IDownloadProgress? progress,
        string? transport = null, MultipathResult? transfer = null)
    {
        _bars?.Remove(progress);
        var aside = toStdout || result.WroteStraight;
        if (result.ExitCode != ExitCodes.Success)
        {
            Error($"error: {EscapingEnricher.Escape(name)}: {EscapingEnricher.Escape(result.Message)}");
        }
        if (_mode == OutputMode.Json)
        {
            Write(JsonSerializer.Serialize(Report(name, toStdout ? "-" : target, result), ClientJsonContext.Plain.FileReport), aside);
        }
        else if (_mode == OutputMode.Normal && result.ExitCode == ExitCodes.Success)
        {
            Write(Line(name, target, toStdout, result, transport, transfer), aside);
        }
    }

    /// <summary>A name refused before asking: its error line (and its JSON object).</summary>
    public void Refused(string name, string message)
    {
        Error($"error: {message}");
        if (_mode == OutputMode.Json)
        {
            Write(JsonSerializer.Serialize(Report(name, null, new DownloadResult(ExitCodes.Refused, message)), ClientJsonContext.Plain.FileReport), aside: false);
        }
    }

    /// <summary>A file that got no answer (cannot connect, a timeout): its result, as <see cref="Finished"/> prints
    /// it; returns its exit code.</summary>
    public int Failed(string name, string? target, bool toStdout, UpstreamException failure, IDownloadProgress? progress)
    {
        var result = new DownloadResult(failure.Status is { } status ? ExitCodes.For(status) : ExitCodes.NetworkError, failure.Message);
        Finished(name, target, toStdout, result, progress);
        return result.ExitCode;
    }

    /// <summary>A line about a retry or a start-over on standard error; none with --quiet.</summary>
    public void Notice(string line)
    {
        if (_mode != OutputMode.Quiet)
        {
            Error(line);
        }
    }

    /// <summary>An error line on standard error, in every mode.</summary>
    public void Error(string line)
    {
        lock (_lock)
        {
            if (_bars is not null)
            {
                _bars.WriteLine(line);
            }
            else
            {
                Console.Error.WriteLine(line);
            }
        }
    }

    /// <summary>The line after a batch: how many files, how many failed, bytes, time and rate. On standard output
    /// beside the files' lines; on standard error with --json (standard output holds JSON only); none with --quiet.</summary>
    public void Summary(int files, int failed, long bytes, TimeSpan elapsed)
    {
        if (_mode == OutputMode.Quiet)
        {
            return;
        }
        var seconds = Math.Max(elapsed.TotalSeconds, 1e-6);
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{files} {(files == 1 ? "file" : "files")}: {files - failed} fetched, {failed} failed, {bytes} bytes ({Units.FormatBytes(bytes)}) in {Units.FormatDuration(elapsed)}, {Units.FormatBytes(bytes / seconds)}/s");
        Write(line, aside: _mode == OutputMode.Json);
    }

    /// <summary>Takes the bars down (the cursor comes back).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_bars is not null)
        {
            await _bars.DisposeAsync();
        }
    }

    /// <summary>The cache result as people say it.</summary>
    public static string Describe(ResponseSource source) => source switch
    {
        ResponseSource.Origin => "from origin",
        ResponseSource.CacheHit => "cache hit",
        ResponseSource.CacheMiss => "cache miss",
        ResponseSource.CacheCoalesced => "cache miss (joined a fill in progress)",
        ResponseSource.PassThrough => "passed through uncached",
        ResponseSource.StaleHit => "stale cache hit (origin unreachable)",
        _ => source.ToString(),
    };

    private static string JsonSource(ResponseSource source) => source switch
    {
        ResponseSource.Origin => "origin",
        ResponseSource.CacheHit => "cache_hit",
        ResponseSource.CacheMiss => "cache_miss",
        ResponseSource.CacheCoalesced => "cache_coalesced",
        ResponseSource.PassThrough => "pass_through",
        ResponseSource.StaleHit => "stale_hit",
        _ => source.ToString(),
    };

    private static FileReport Report(string name, string? target, DownloadResult result)
    {
        var ok = result.ExitCode == ExitCodes.Success;
        var head = result.Head is { IsOk: true } answer ? answer : null;
        return new FileReport(name, ok ? target : null, result.Bytes, Math.Round(result.Elapsed.TotalSeconds, 6),
            head is null ? null : JsonSource(head.Source), head?.File?.Digest.ToString(), ok && result.DigestChecked,
            result.Attempts, result.Resumed, result.ExitCode, ok ? null : result.Message);
    }

    private static string Line(string name, string? target, bool toStdout, DownloadResult result, string? transport,
        MultipathResult? transfer)
    {
        var head = result.Head!;
        var seconds = Math.Max(result.Elapsed.TotalSeconds, 1e-6);
        if (result.Bytes == 0 && result.Resumed > 0)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"{name}: already complete, {result.Resumed} bytes ({Units.FormatBytes(result.Resumed)}) on disk, {Describe(head.Source)}, blake3 verified {head.File!.Digest.ToString()[..16]}…{(toStdout ? "" : " -> " + target)}");
        }
        return string.Create(CultureInfo.InvariantCulture,
            $"{name}: {result.Bytes} bytes ({Units.FormatBytes(result.Bytes)}) in {Units.FormatDuration(result.Elapsed)}, {Units.FormatBytes(result.Bytes / seconds)}/s, {Describe(head.Source)}{(transport is null ? "" : ", " + transport)}, blake3 {(result.DigestChecked ? "verified " + head.File!.Digest.ToString()[..16] + "…" : "not checked (partial range)")}{Resumed(result)}{Subflows(transfer)}{(toStdout ? "" : " -> " + target)}");
    }

    /// <summary>With --resume or retries: the bytes that were on disk, and the tries it took.</summary>
    private static string Resumed(DownloadResult result) => string.Create(CultureInfo.InvariantCulture,
        $"{(result.Resumed == 0 ? "" : $", resumed after {result.Resumed} bytes on disk")}{(result.Attempts > 1 ? $", {result.Attempts} attempts" : "")}");

    /// <summary>For a multipath download: how many subflows carried data, and each one's share.</summary>
    private static string Subflows(MultipathResult? transfer) => transfer is null ? ""
        : string.Create(CultureInfo.InvariantCulture,
            $", {transfer.SubflowsCarrying} of {transfer.Subflows.Count} subflows carried data ({string.Join(", ", transfer.Subflows.Select(s => $"{s.Address} {Units.FormatBytes(s.Bytes)}{(s.Failure is null ? "" : " failed")}"))})");

    /// <summary>A result line: standard output, or standard error when <paramref name="aside"/> (the bytes took
    /// standard output); through the bars when they share the terminal.</summary>
    private void Write(string line, bool aside)
    {
        lock (_lock)
        {
            var stream = aside ? Console.Error : Console.Out;
            var onBarsTerminal = _bars is not null && (aside || !Console.IsOutputRedirected);
            if (onBarsTerminal)
            {
                _bars!.WriteLine(line);
            }
            else
            {
                stream.WriteLine(line);
            }
        }
    }
}
