using System.Diagnostics;
using System.Diagnostics.Metrics;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Metrics;

/// <summary>
/// A server's instruments, on one <see cref="Meter"/> per server (System.Diagnostics.Metrics). The STATS counters
/// are observable instruments that read the very fields STATS reads, so the two never disagree; request duration and
/// time to first byte are histograms labelled by operation, status and cache result. Without a listener (no
/// --metrics-listen) recording is one branch on <see cref="Instrument.Enabled"/>.
/// </summary>
public sealed class ServerMetrics : IDisposable
{
    /// <summary>The meter's name, the same for every server and proxy (they run as separate processes).</summary>
    public const string MeterName = "FileProxy";

    /// <summary>Histogram buckets in seconds: a 4 KiB hit on loopback takes tens of microseconds, a 1 GiB miss over
    /// a slow link minutes.</summary>
    public static readonly IReadOnlyList<double> DurationBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

    /// <summary>STATS figures that go up and down (all others only grow): exported as gauges.</summary>
    private static readonly HashSet<string> GaugeNames = new(StringComparer.Ordinal)
    {
        "connections_active", "fills_in_progress", "entries", "bytes_cached", "bytes_in_memory", "cache_max_bytes",
        "digests_known",
    };

    /// <summary>What each STATS figure counts, as the exported metric's help text (others say "STATS counter NAME").</summary>
    private static readonly Dictionary<string, string> Descriptions = new(StringComparer.Ordinal)
    {
        ["connections_accepted"] = "Connections accepted",
        ["connections_active"] = "Connections open now",
        ["connections_refused_busy"] = "Connections answered Busy and closed (connection limits)",
        ["requests"] = "Requests received",
        ["requests_failed"] = "Requests answered with an error or cut part way",
        ["bytes_served"] = "Body bytes sent to clients",
        ["tls_handshakes_failed"] = "TLS handshakes that failed or timed out",
        ["auth_refused"] = "Requests refused for a missing or wrong token",
        ["log_lines_dropped"] = "Log lines dropped because standard error was not being read",
        ["cache_hits"] = "GETs served from a fresh cache entry",
        ["cache_stale_hits"] = "GETs served from a cached copy while the origin was unreachable",
        ["cache_misses"] = "GETs that started a fill",
        ["coalesced_requests"] = "GETs that joined a fill already running",
        ["pass_through"] = "GETs streamed from the origin without caching (larger than the cache)",
        ["upstream_fetches"] = "Fetches from the origin (fills and pass-throughs)",
        ["upstream_failures"] = "Fetches and revalidations that failed at the origin",
        ["bytes_fetched"] = "Body bytes received from the origin",
        ["revalidations"] = "STATs sent to the origin to revalidate an entry",
        ["revalidations_changed"] = "Revalidations that found the file changed or gone",
        ["evictions"] = "Entries evicted to stay under --cache-max-size",
        ["purges"] = "Entries removed by PURGE",
        ["fills_in_progress"] = "Fills running or waiting for a slot now",
        ["fills_queued"] = "Fills that had to wait for a --max-fills slot",
        ["upstream_queued"] = "Other upstream work (pass-throughs, revalidations, STATs) that had to wait for a --max-fills slot",
        ["fills_abandoned"] = "Fills given up because every reader left",
        ["entries"] = "Cache entries now",
        ["bytes_cached"] = "Bytes of cached files now",
        ["bytes_in_memory"] = "Bytes of small cached files also held in memory now",
        ["cache_max_bytes"] = "--cache-max-size in bytes (-1: no limit)",
        ["digests_computed"] = "BLAKE3 digests computed",
        ["bytes_hashed"] = "Bytes read to compute digests",
        ["digests_known"] = "Object digests kept in the digest index",
        ["objects_changed_while_read"] = "Objects replaced in the store while being read",
    };

    private static readonly string?[] OperationLabels = new string?[256];
    private static readonly string?[] StatusLabels = new string?[256];

    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _firstByte;

    /// <param name="counters">Reads every STATS counter (names as STATS gives them); called for each name at a scrape.</param>
    public ServerMetrics(Func<IReadOnlyList<KeyValuePair<string, long>>> counters)
    {
        Meter = new Meter(MeterName);
        var advice = new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets };
        _duration = Meter.CreateHistogram("fileproxy.request.duration", "s",
            "Time from a request's last byte in to its response's last byte out", tags: null, advice);
        _firstByte = Meter.CreateHistogram("fileproxy.time_to_first_byte", "s",
            "Time from a request's last byte in to the first byte of its body out (of the head, for answers without a body)", tags: null, advice);
        foreach (var (name, _) in counters())
        {
            var description = Descriptions.GetValueOrDefault(name) ?? $"STATS counter {name}";
            if (GaugeNames.Contains(name))
            {
                Meter.CreateObservableGauge("fileproxy." + name, () => Read(counters, name), unit: null, description);
            }
            else
            {
                Meter.CreateObservableCounter("fileproxy." + name, () => Read(counters, name), unit: null, description);
            }
        }
        // The process's own collector, for reading a latency tail: every collection stops all requests in flight.
        Meter.CreateObservableCounter("fileproxy.process.allocated_bytes", () => GC.GetTotalAllocatedBytes(), unit: null,
            "Bytes the process has allocated on the managed heap");
        Meter.CreateObservableCounter("fileproxy.process.collections", () => (long)GC.CollectionCount(0), unit: null,
            "Garbage collections (of any generation)");
        Meter.CreateObservableCounter("fileproxy.process.collection_pause_microseconds",
            () => (long)GC.GetTotalPauseDuration().TotalMicroseconds, unit: null, "Time the garbage collector paused the process");
    }

    public Meter Meter { get; }

    /// <summary>Whether anything listens (a metrics endpoint): callers skip the work of a measurement otherwise.</summary>
    public bool Enabled => _duration.Enabled || _firstByte.Enabled;

    /// <summary>Records one answered request. <paramref name="firstByteSeconds"/> is null when nothing was sent.</summary>
    public void RecordRequest(Opcode operation, StatusCode status, bool cut, ResponseSource? source, double seconds, double? firstByteSeconds)
    {
        var tags = new TagList
        {
            { "operation", OperationLabel(operation) },
            { "status", cut ? "cut" : StatusLabel(status) },
            { "cache", CacheLabel(source) },
        };
        _duration.Record(seconds, tags);
        if (firstByteSeconds is { } firstByte)
        {
            _firstByte.Record(firstByte, tags);
        }
    }

    public void Dispose() => Meter.Dispose();

    private static long Read(Func<IReadOnlyList<KeyValuePair<string, long>>> counters, string name)
    {
        foreach (var (key, value) in counters())
        {
            if (key == name)
            {
                return value;
            }
        }
        return 0;
    }

    /// <summary>"get", "stat", …: a request opcode's name, made once per value (no allocation per request);
    /// "other" for anything a peer sends that is no request opcode, so a peer cannot make up labels.</summary>
    internal static string OperationLabel(Opcode opcode) =>
        OperationLabels[(byte)opcode] ??= Enum.IsDefined(opcode) && ((byte)opcode & (byte)Opcode.ResponseFlag) == 0
            ? opcode.ToString().ToLowerInvariant() : "other";

    /// <summary>"ok", "not_found", "upstream_unavailable", …: the status code's name in snake case.</summary>
    internal static string StatusLabel(StatusCode status) =>
        StatusLabels[(byte)status] ??= Enum.IsDefined(status) ? SnakeCase(status.ToString()) : "other";

    /// <summary>Where a GET or STAT answer came from: hit, stale_hit, miss, coalesced, pass (too large to cache),
    /// origin (a server's own files, or a proxy's STAT of an uncached name); none for answers without a source.</summary>
    internal static string CacheLabel(ResponseSource? source) => source switch
    {
        ResponseSource.CacheHit => "hit",
        ResponseSource.StaleHit => "stale_hit",
        ResponseSource.CacheMiss => "miss",
        ResponseSource.CacheCoalesced => "coalesced",
        ResponseSource.PassThrough => "pass",
        ResponseSource.Origin => "origin",
        null => "none",
        _ => "other",
    };

    private static string SnakeCase(string name)
    {
        var text = new System.Text.StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                text.Append('_');
            }
            text.Append(char.ToLowerInvariant(name[i]));
        }
        return text.ToString();
    }
}
