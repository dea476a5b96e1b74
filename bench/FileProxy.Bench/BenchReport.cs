using System.Globalization;
using System.Text;
using System.Text.Json;
using FileProxy.Protocol;

namespace FileProxy.Bench;

/// <summary>
/// The figures of one benchmark run: per system and run, computed from the raw records; then medians over the runs,
/// the ratio of ours to the better of nginx and Varnish, and the machine's limit where one applies.
/// </summary>
internal sealed class BenchReport
{
    public const string Ours = "ours";
    private static readonly string[] Systems = [Ours, "nginx", "varnish"];
    private static readonly string[] Others = ["nginx", "varnish"];

    private readonly Settings _settings;
    private readonly Dictionary<(int Run, string System), Sample> _samples;
    private readonly List<MetricResult> _results = [];

    private BenchReport(Settings settings, Dictionary<(int, string), Sample> samples, List<string> warnings)
    {
        _settings = settings;
        _samples = samples;
        Warnings = warnings;
    }

    public List<string> Warnings { get; }

    public static BenchReport Build(IEnumerable<JsonElement> records)
    {
        var settings = new Settings();
        var samples = new Dictionary<(int, string), Sample>();
        var warnings = new List<string>();
        foreach (var record in records)
        {
            var type = record.GetProperty("type").GetString();
            if (type == "config")
            {
                settings.Config = record;
                continue;
            }
            if (type == "limit")
            {
                settings.Limits = record;
                continue;
            }
            var key = (record.GetProperty("run").GetInt32(), record.GetProperty("system").GetString()!);
            if (!samples.TryGetValue(key, out var sample))
            {
                samples[key] = sample = new Sample();
            }
            switch (type)
            {
                case "fetch":
                    var test = record.GetProperty("test").GetString()!;
                    if (!sample.Fetches.TryGetValue(test, out var list))
                    {
                        sample.Fetches[test] = list = [];
                    }
                    list.Add(Fetch.From(record));
                    break;
                case "load":
                    // A paced run (a fixed request rate) has rows of its own; the closed loop's (and wrk's, which
                    // has no rate field) are the others.
                    if (record.TryGetProperty("rate", out var rate) && rate.GetDouble() > 0)
                    {
                        if (!sample.PacedLoads.TryGetValue(rate.GetDouble(), out var rounds))
                        {
                            sample.PacedLoads[rate.GetDouble()] = rounds = [];
                        }
                        rounds.Add(record);
                    }
                    else
                    {
                        sample.Load = record;
                    }
                    break;
                case "user":
                    var userTest = record.GetProperty("test").GetString()!;
                    if (!sample.Users.TryGetValue(userTest, out var runs))
                    {
                        sample.Users[userTest] = runs = [];
                    }
                    runs.Add(UserRun.From(record));
                    break;
                case "rss":
                    sample.RssKib = record.GetProperty("rss_kib").GetDouble();
                    break;
                case "origin":
                    sample.OriginBytes = record.GetProperty("bytes_from_origin").GetDouble();
                    break;
                default:
                    warnings.Add($"unknown record type '{type}'");
                    break;
            }
        }
        var report = new BenchReport(settings, samples, warnings);
        report.Check();
        report.Compute();
        return report;
    }

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        var c = _settings;
        text.Append(Invariant($"FileProxy benchmark, {c.Text("mode")} mode, {c.Number("runs"):0} runs, medians ({c.Text("started")}; {Environment.ProcessorCount} cores)\n\n"));
        text.Append(Invariant($"Machine limits: loopback {Mb(c.Limit("loopback_bytes_per_s"))} MB/s (iperf3, one stream), "));
        text.Append(Invariant($"{Mb(c.Limit("loopback_parallel_bytes_per_s"))} MB/s ({c.Limit("loopback_streams"):0} streams at once), "));
        text.Append(Invariant($"file write {Mb(c.Limit("file_write_bytes_per_s"))} MB/s (page cache), {Mb(c.Limit("file_write_fsync_bytes_per_s"))} MB/s (with fdatasync). "));
        text.Append("A percentage is the figure as a fraction of its limit; ↑ higher is better, ↓ lower is better; ");
        text.Append("ours ÷ best is ours divided by the better of nginx and Varnish.\n\n");
        text.Append("| Workload | ours | nginx | varnish | ours ÷ best | limit |\n");
        text.Append("|---|---:|---:|---:|---:|---:|\n");
        // Rows of workloads left out (BENCH_WORKLOADS) are left out too.
        foreach (var result in _results.Where(result => result.Medians.Values.Any(median => median is not null)))
        {
            text.Append(Invariant($"| {result.Metric.Label} {(result.Metric.HigherIsBetter ? "↑" : "↓")} "));
            foreach (var system in Systems)
            {
                text.Append("| ").Append(Cell(result, system)).Append(' ');
            }
            text.Append("| ").Append(result.Ratio is { } ratio ? Invariant($"{ratio:0.00}") : "–").Append(' ');
            text.Append("| ").Append(result.Limit is { } limit ? Number(limit) : "").Append(" |\n");
        }
        if (Warnings.Count > 0)
        {
            text.Append("\nWarnings:\n");
            foreach (var warning in Warnings)
            {
                text.Append("- ").Append(warning).Append('\n');
            }
        }
        return text.ToString();
    }

    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WritePropertyName("config");
            _settings.Config.WriteTo(w);
            w.WritePropertyName("limits");
            _settings.Limits.WriteTo(w);
            w.WriteStartArray("metrics");
            foreach (var result in _results)
            {
                w.WriteStartObject();
                w.WriteString("key", result.Metric.Key);
                w.WriteString("label", result.Metric.Label);
                w.WriteBoolean("higher_is_better", result.Metric.HigherIsBetter);
                WriteNullable(w, "limit", result.Limit);
                WriteNullable(w, "ratio_ours_to_best_other", result.Ratio);
                w.WriteStartObject("median");
                foreach (var system in Systems)
                {
                    WriteNullable(w, system, result.Medians[system]);
                }
                w.WriteEndObject();
                w.WriteStartObject("runs");
                foreach (var system in Systems)
                {
                    w.WriteStartArray(system);
                    foreach (var value in result.Runs[system])
                    {
                        w.WriteNumberValue(Math.Round(value, 6));
                    }
                    w.WriteEndArray();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("warnings");
            foreach (var warning in Warnings)
            {
                w.WriteStringValue(warning);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, Math.Round(v, 6));
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private IEnumerable<Metric> Metrics()
    {
        var c = _settings;
        var big = Size(c.Number("a_bytes"));
        var mid = Size(c.Number("b_bytes"));
        var clients = c.Number("b_clients");
        var originMb = Mb(c.Number("origin_rate"));
        var loopbackMb = c.Limit("loopback_bytes_per_s") / 1e6;
        var parallelMb = c.Limit("loopback_parallel_bytes_per_s") / 1e6;
        var toFileMb = Math.Min(loopbackMb, c.Limit("file_write_bytes_per_s") / 1e6);
        var small = Size(c.Number("c_file_bytes"));
        yield return new Metric("a_cold_mbps", Invariant($"a. {big} cold miss, 1 client → file: MB/s"), true,
            s => s.One("a-cold") is { } f ? f.Bytes / f.Total / 1e6 : null, toFileMb);
        yield return new Metric("a_cold_ttfb_ms", "a. cold miss: time to first byte, ms", false,
            s => s.One("a-cold")?.Ttfb * 1e3, null);
        yield return new Metric("a_warm_mbps", Invariant($"a. {big} warm hit, 1 client → file: MB/s"), true,
            s => s.One("a-warm") is { } f ? f.Bytes / f.Total / 1e6 : null, toFileMb);
        yield return new Metric("b_cold_done_s", Invariant($"b. {mid} cold, {clients:0} clients, origin {originMb} MB/s: all done, s"), false,
            s => s.All("b-cold")?.Max(f => f.Total), c.Number("b_bytes") / c.Number("origin_rate"));
        yield return new Metric("b_cold_origin_fetches", "b. cold: origin fetches (bytes from origin ÷ file size)", false,
            s => s.OriginBytes / c.Number("b_bytes"), 1);
        yield return new Metric("b_cold_followers_ttfb_p50_ms", "b. cold: followers' time to first byte, median, ms", false,
            s => Followers(s) is { } t ? Median(t) * 1e3 : null, null);
        yield return new Metric("b_cold_followers_ttfb_max_ms", "b. cold: followers' time to first byte, max, ms", false,
            s => Followers(s) is { } t ? t.Max() * 1e3 : null, null);
        yield return new Metric("b_warm_done_s", Invariant($"b. {mid} warm, {clients:0} clients: all done, s"), false,
            s => s.All("b-warm")?.Max(f => f.Total), clients * c.Number("b_bytes") / c.Limit("loopback_parallel_bytes_per_s"));
        yield return new Metric("b_warm_mbps", "b. warm: total MB/s to all clients", true,
            s => s.All("b-warm") is { } all ? all.Sum(f => f.Bytes) / all.Max(f => f.Total) / 1e6 : null, parallelMb);
        yield return new Metric("b_warm_ttfb_p50_ms", "b. warm: time to first byte, median, ms", false,
            s => s.All("b-warm") is { } all ? Median(all.Select(f => f.Ttfb)) * 1e3 : null, null);
        yield return new Metric("c_rps", Invariant($"c. {small} hits, {c.Number("c_requests"):0} requests, {c.Number("c_connections"):0} connections: requests/s"), true,
            s => s.Load?.GetProperty("rps").GetDouble(), null);
        yield return new Metric("c_mean_ms", "c. latency mean, ms", false, s => LoadFigure(s.Load, "mean_ms"), null);
        yield return new Metric("c_p50_ms", "c. latency p50, ms", false, s => LoadFigure(s.Load, "p50_ms"), null);
        yield return new Metric("c_p99_ms", "c. latency p99, ms", false, s => LoadFigure(s.Load, "p99_ms"), null);
        var pacedSeconds = c.Number("c_paced_seconds");
        foreach (var rate in c.Numbers("c_rates"))
        {
            var paced = Invariant($"c. paced, {rate:0} requests/s") + (double.IsNaN(pacedSeconds) ? "" : Invariant($" for {pacedSeconds:0} s"))
                + (c.PacedRounds > 1 ? Invariant($", median of {c.PacedRounds} rounds") : "");
            yield return new Metric(Invariant($"c_paced_{rate:0}_p50_ms"), Invariant($"{paced}: latency p50, ms"), false,
                s => s.PacedFigure(rate, "p50_ms", c.PacedRounds), null);
            yield return new Metric(Invariant($"c_paced_{rate:0}_p99_ms"), Invariant($"{paced}: latency p99, ms"), false,
                s => s.PacedFigure(rate, "p99_ms", c.PacedRounds), null);
        }
        yield return new Metric("d_rss_mib", "d. peak RSS during b (all processes), MiB", false, s => s.RssKib / 1024, null);
        foreach (var (test, bytes) in UserTests())
        {
            var size = Size(bytes);
            var key = test.Replace('-', '_');
            yield return new Metric($"{key}_wall_ms", Invariant($"u. {size} warm, whole process (ours: client -o; others: curl -o): wall, ms"), false,
                s => s.UserMedian(test, bytes, r => r.Wall * 1e3), null);
            yield return new Metric($"{key}_cpu_ms", Invariant($"u. {size}: CPU (user + system), ms"), false,
                s => s.UserMedian(test, bytes, r => r.Cpu * 1e3), null);
            yield return new Metric($"{key}_rss_mib", Invariant($"u. {size}: client's peak RSS, MiB"), false,
                s => s.UserMedian(test, bytes, r => r.RssKib / 1024), null);
        }
    }

    /// <summary>Workload u's tests and their file sizes.</summary>
    private (string Test, double Bytes)[] UserTests() =>
        [("u-small", _settings.Number("c_file_bytes")), ("u-mid", _settings.Number("u_mid_bytes")), ("u-big", _settings.Number("a_bytes"))];

    /// <summary>The cold clients' first-byte times without the first one, which started the origin fetch.</summary>
    private static double[]? Followers(Sample sample) =>
        sample.All("b-cold") is { Count: > 1 } all ? [.. all.Select(f => f.Ttfb).Order().Skip(1)] : null;

    private void Compute()
    {
        foreach (var metric in Metrics())
        {
            var runs = Systems.ToDictionary(system => system, system => _samples
                .Where(pair => pair.Key.System == system)
                .OrderBy(pair => pair.Key.Run)
                .Select(pair => metric.Compute(pair.Value))
                .OfType<double>()
                .Where(double.IsFinite)
                .ToList());
            var medians = runs.ToDictionary(pair => pair.Key, pair => pair.Value.Count > 0 ? Median(pair.Value) : (double?)null);
            var others = Others.Select(system => medians[system]).OfType<double>().ToList();
            double? ratio = null;
            if (medians[Ours] is { } ours && others.Count > 0)
            {
                var best = metric.HigherIsBetter ? others.Max() : others.Min();
                ratio = best > 0 ? ours / best : null;
            }
            _results.Add(new MetricResult(metric, runs, medians, ratio, metric.Limit is { } limit && double.IsFinite(limit) ? limit : null));
        }
    }

    /// <summary>Records what went wrong: failed or short transfers, warm fetches that missed, load errors.</summary>
    private void Check()
    {
        var expected = new Dictionary<string, double>
        {
            ["a-cold"] = _settings.Number("a_bytes"),
            ["a-warm"] = _settings.Number("a_bytes"),
            ["b-cold"] = _settings.Number("b_bytes"),
            ["b-warm"] = _settings.Number("b_bytes"),
        };
        // Workloads left out (BENCH_WORKLOADS) are not missing.
        var ran = _samples.Values.SelectMany(sample => sample.Fetches.Keys).ToHashSet(StringComparer.Ordinal);
        var loadRan = _samples.Values.Any(sample => sample.Load is not null);
        foreach (var ((run, system), sample) in _samples.OrderBy(pair => pair.Key.Run))
        {
            foreach (var (test, bytes) in UserTests())
            {
                var failed = sample.Users.GetValueOrDefault(test, []).Count(r => !r.Ok || r.Bytes != bytes);
                if (failed > 0)
                {
                    Warnings.Add(Invariant($"run {run} {system} {test}: {failed} whole-process fetches failed or were short"));
                }
            }
            foreach (var (test, size) in expected)
            {
                if (!ran.Contains(test))
                {
                    continue;
                }
                if (!sample.Fetches.TryGetValue(test, out var fetches))
                {
                    Warnings.Add(Invariant($"run {run} {system} {test}: no result"));
                    continue;
                }
                var failed = fetches.Count(f => !f.Ok || f.Bytes != size);
                if (failed > 0)
                {
                    Warnings.Add(Invariant($"run {run} {system} {test}: {failed} of {fetches.Count} transfers failed or were short"));
                }
                var missed = fetches.Count(f => !f.Cache.Equals("HIT", StringComparison.OrdinalIgnoreCase));
                if (test.EndsWith("-warm", StringComparison.Ordinal) && missed > 0)
                {
                    Warnings.Add(Invariant($"run {run} {system} {test}: {missed} of {fetches.Count} were not cache hits"));
                }
            }
            if (!loadRan)
            {
                continue;
            }
            if (sample.Load is null)
            {
                Warnings.Add(Invariant($"run {run} {system} c: no result"));
            }
            var rounds = _settings.PacedRounds;
            foreach (var rate in _settings.Numbers("c_rates"))
            {
                var count = sample.PacedLoads.GetValueOrDefault(rate)?.Count ?? 0;
                if (count != rounds)
                {
                    Warnings.Add(Invariant($"run {run} {system} c paced {rate:0}/s: {count} results for {rounds} round(s)"));
                }
            }
            foreach (var (name, load) in sample.PacedLoads
                         .SelectMany(paced => paced.Value.Select((line, i) => (PacedName(paced.Key, line, i, rounds), line)))
                         .Prepend(("c", sample.Load ?? default)).Where(line => line.Item2.ValueKind == JsonValueKind.Object))
            {
                var requests = load.GetProperty("requests").GetDouble();
                if (load.GetProperty("errors").GetDouble() > 0)
                {
                    Warnings.Add(Invariant($"run {run} {system} {name}: {load.GetProperty("errors").GetDouble():0} failed requests"));
                }
                else if (load.TryGetProperty("hits", out var hits) && hits.GetDouble() < requests)
                {
                    Warnings.Add(Invariant($"run {run} {system} {name}: {requests - hits.GetDouble():0} of {requests:0} were not cache hits"));
                }
            }
        }
        if (_samples.Count == 0)
        {
            Warnings.Add("no results");
        }
    }

    /// <summary>A paced run's name in a warning: with its round (the record's, else its place) where there are several.</summary>
    private static string PacedName(double rate, JsonElement line, int index, int rounds) =>
        Invariant($"c paced {rate:0}/s")
        + (rounds > 1 ? Invariant($" round {(line.TryGetProperty("round", out var round) ? round.GetInt32() : index + 1)}") : "");

    /// <summary>A figure of a load generator's JSON line, or null where the line or the figure is missing (wrk's
    /// lines have no mean).</summary>
    private static double? LoadFigure(JsonElement? load, string name) =>
        load is { } line && line.TryGetProperty(name, out var value) ? value.GetDouble() : null;

    private static string Cell(MetricResult result, string system)
    {
        if (result.Medians[system] is not { } value)
        {
            return "–";
        }
        var cell = Number(value);
        if (result.Limit is { } limit && limit > 0 && value > 0 && result.Metric.Key != "b_cold_origin_fetches")
        {
            var fraction = result.Metric.HigherIsBetter ? value / limit : limit / value;
            cell += Invariant($" ({fraction * 100:0}%)");
        }
        return cell;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>Three significant figures or so, without exponent or thousands separators.</summary>
    private static string Number(double value) => Math.Abs(value) switch
    {
        >= 100 => Invariant($"{value:0}"),
        >= 10 => Invariant($"{value:0.0}"),
        >= 1 => Invariant($"{value:0.00}"),
        _ => Invariant($"{value:0.000}"),
    };

    /// <summary>"1 GiB", "100 MiB", "4 KiB" for whole binary units, else three significant figures.</summary>
    private static string Size(double bytes)
    {
        foreach (var (unit, shift) in new[] { ("GiB", 30), ("MiB", 20), ("KiB", 10) })
        {
            var size = (double)(1L << shift);
            if (bytes >= size && bytes % size == 0)
            {
                return Invariant($"{bytes / size:0} {unit}");
            }
        }
        return double.IsFinite(bytes) ? Units.FormatBytes(bytes) : "?";
    }

    private static string Mb(double bytesPerSecond) => Invariant($"{bytesPerSecond / 1e6:0}");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed record Metric(string Key, string Label, bool HigherIsBetter, Func<Sample, double?> Compute, double? Limit);

    private sealed record MetricResult(Metric Metric, Dictionary<string, List<double>> Runs, Dictionary<string, double?> Medians,
        double? Ratio, double? Limit);

    private sealed record Fetch(bool Ok, double Ttfb, double Total, double Bytes, string Cache)
    {
        public static Fetch From(JsonElement record) => new(
            record.GetProperty("ok").GetBoolean(),
            record.GetProperty("ttfb_s").GetDouble(),
            record.GetProperty("total_s").GetDouble(),
            record.GetProperty("bytes").GetDouble(),
            record.TryGetProperty("cache", out var cache) ? cache.GetString() ?? "" : "");
    }

    private sealed record UserRun(bool Ok, double Bytes, double Wall, double Cpu, double RssKib)
    {
        public static UserRun From(JsonElement record) => new(
            record.GetProperty("ok").GetBoolean(),
            record.GetProperty("bytes").GetDouble(),
            record.GetProperty("wall_s").GetDouble(),
            record.GetProperty("cpu_s").GetDouble(),
            record.GetProperty("rss_kib").GetDouble());
    }

    private sealed class Sample
    {
        public Dictionary<string, List<Fetch>> Fetches { get; } = new(StringComparer.Ordinal);

        /// <summary>Workload u's whole-process fetches, per test, in the order of the rounds.</summary>
        public Dictionary<string, List<UserRun>> Users { get; } = new(StringComparer.Ordinal);

        /// <summary>The median over this run's rounds, or null unless every fetch succeeded in full.</summary>
        public double? UserMedian(string test, double bytes, Func<UserRun, double> value) =>
            Users.TryGetValue(test, out var list) && list.Count > 0 && list.All(r => r.Ok && r.Bytes == bytes)
                ? Median(list.Select(value))
                : null;

        public JsonElement? Load { get; set; }

        /// <summary>Workload c's runs at fixed request rates (--rate), by rate, one per round.</summary>
        public Dictionary<double, List<JsonElement>> PacedLoads { get; } = [];

        /// <summary>A figure of the paced runs at <paramref name="rate"/>: the median over this run's rounds, or null
        /// unless all <paramref name="expectedRounds"/> rounds have it (a round whose load failed left no line).</summary>
        public double? PacedFigure(double rate, string name, int expectedRounds) =>
            PacedLoads.TryGetValue(rate, out var rounds) && rounds.Count == expectedRounds
            && rounds.Select(line => LoadFigure(line, name)).ToList() is var figures && figures.All(figure => figure is not null)
                ? Median(figures.Select(figure => figure!.Value))
                : null;

        public double? RssKib { get; set; }

        public double? OriginBytes { get; set; }

        public Fetch? One(string test) => All(test)?[0];

        /// <summary>The test's transfers, or null unless every one of them succeeded.</summary>
        public List<Fetch>? All(string test) =>
            Fetches.TryGetValue(test, out var list) && list.Count > 0 && list.All(f => f.Ok) ? list : null;
    }

    private sealed class Settings
    {
        public JsonElement Config { get; set; } = JsonDocument.Parse("{}").RootElement;

        public JsonElement Limits { get; set; } = JsonDocument.Parse("{}").RootElement;

        public double Number(string name) =>
            Config.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : double.NaN;

        /// <summary>A list of numbers in the configuration (none where it is missing, as in older results).</summary>
        public double[] Numbers(string name) =>
            Config.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array
                ? value.EnumerateArray().Select(item => item.GetDouble()).ToArray()
                : [];

        /// <summary>Paced rounds per run: one in older results, which do not say.</summary>
        public int PacedRounds => Number("c_paced_rounds") is >= 1 and var rounds ? (int)rounds : 1;

        public string Text(string name) =>
            Config.TryGetProperty(name, out var value) ? value.ToString() : "?";

        public double Limit(string name) =>
            Limits.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : double.NaN;
    }
}
