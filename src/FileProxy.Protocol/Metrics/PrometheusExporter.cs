using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace FileProxy.Protocol.Metrics;

/// <summary>
/// Listens to one <see cref="Meter"/> instance and writes its instruments in the Prometheus text exposition format
/// (version 0.0.4). Observable instruments are read at each scrape; histograms are aggregated as they are recorded,
/// into one series per label set: a dictionary lookup and two atomic additions per measurement, no lock and no
/// allocation once a label set has been seen. Instruments take at most three tags (ours take three).
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    private readonly Meter _meter;
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, HistogramState?> _instruments = new();
    private readonly Lock _scrapeLock = new();
    private List<(Instrument Instrument, long Value)>? _observed;

    public PrometheusExporter(Meter meter)
    {
        _meter = meter;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!ReferenceEquals(instrument.Meter, _meter))
            {
                return;
            }
            var state = instrument is Histogram<double> histogram
                ? new HistogramState(histogram.Advice?.HistogramBucketBoundaries ?? ServerMetrics.DurationBuckets)
                : null;
            _instruments[instrument] = state;
            listener.EnableMeasurementEvents(instrument, state);
        };
        _listener.MeasurementsCompleted = (instrument, _) => _instruments.TryRemove(instrument, out HistogramState? _);
        _listener.SetMeasurementEventCallback<double>(static (instrument, value, tags, state) =>
        {
            if (state is HistogramState histogram)
            {
                histogram.Record(value, tags);
            }
        });
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.IsObservable)
            {
                _observed?.Add((instrument, value)); // only during a scrape, on its thread
            }
        });
        _listener.Start();
    }

    /// <summary>Every instrument's current figures, as Prometheus reads them.</summary>
    public string Scrape()
    {
        lock (_scrapeLock)
        {
            _observed = [];
            try
            {
                _listener.RecordObservableInstruments();
                var text = new StringBuilder(4096);
                foreach (var (instrument, value) in _observed.OrderBy(item => item.Instrument.Name, StringComparer.Ordinal))
                {
                    var counter = instrument is ObservableCounter<long>;
                    var name = PrometheusName(instrument) + (counter ? "_total" : "");
                    Header(text, name, instrument.Description, counter ? "counter" : "gauge");
                    text.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }
                foreach (var (instrument, histogram) in _instruments.OrderBy(item => item.Key.Name, StringComparer.Ordinal))
                {
                    if (histogram is not null)
                    {
                        var name = PrometheusName(instrument);
                        Header(text, name, instrument.Description, "histogram");
                        histogram.Write(text, name);
                    }
                }
                return text.ToString();
            }
            finally
            {
                _observed = null;
            }
        }
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>"fileproxy.request.duration" in seconds → "fileproxy_request_duration_seconds".</summary>
    private static string PrometheusName(Instrument instrument)
    {
        var name = instrument.Name.Replace('.', '_');
        return instrument.Unit == "s" && !name.EndsWith("_seconds", StringComparison.Ordinal) ? name + "_seconds" : name;
    }

    private static void Header(StringBuilder text, string name, string? description, string type)
    {
        if (!string.IsNullOrEmpty(description))
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(description.Replace("\\", "\\\\", StringComparison.Ordinal)
                .Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
        }
        text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
    }

    private static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf"
        : Math.Abs(value) is >= 1e-9 and < 1e15 ? value.ToString("0.#########", CultureInfo.InvariantCulture) // 0.00005, not 5E-05
        : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>One histogram's series, one per label set.</summary>
    private sealed class HistogramState(IReadOnlyList<double> bounds)
    {
        private readonly double[] _bounds = [.. bounds];
        private readonly ConcurrentDictionary<(string?, string?, string?), Series> _series = new();
        private Series? _last;

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = (Value(tags, 0), Value(tags, 1), Value(tags, 2));
            // Most requests in a row share their labels (label values are constant strings): three reference
            // comparisons then find the series without hashing.
            var series = _last;
            if (series is null || !ReferenceEquals(series.Key.Item1, key.Item1) || !ReferenceEquals(series.Key.Item2, key.Item2)
                || !ReferenceEquals(series.Key.Item3, key.Item3))
            {
                if (!_series.TryGetValue(key, out series))
                {
                    series = _series.GetOrAdd(key, new Series(key, Labels(tags), _bounds.Length + 1));
                }
                _last = series;
            }
            var bucket = Array.BinarySearch(_bounds, value);
            series.Add(bucket < 0 ? ~bucket : bucket, value); // a value equal to a bound counts in that bound's bucket ("le")
        }

        public void Write(StringBuilder text, string name)
        {
            foreach (var series in _series.Values.OrderBy(series => series.Labels, StringComparer.Ordinal))
            {
                var (counts, sum) = series.Read();
                long cumulative = 0;
                for (var i = 0; i < counts.Length; i++)
                {
                    cumulative += counts[i];
                    var bound = i < _bounds.Length ? Number(_bounds[i]) : "+Inf";
                    text.Append(name).Append("_bucket{").Append(series.Labels).Append(series.Labels.Length > 0 ? "," : "")
                        .Append("le=\"").Append(bound).Append("\"} ").Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }
                var labels = series.Labels.Length > 0 ? "{" + series.Labels + "}" : "";
                text.Append(name).Append("_sum").Append(labels).Append(' ').Append(Number(sum)).Append('\n');
                text.Append(name).Append("_count").Append(labels).Append(' ').Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }

        private static string? Value(ReadOnlySpan<KeyValuePair<string, object?>> tags, int index) =>
            index < tags.Length ? tags[index].Value as string ?? tags[index].Value?.ToString() : null;

        /// <summary>operation="get",status="ok",cache="hit": escaped once, when the label set is first seen.</summary>
        private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var text = new StringBuilder();
            foreach (var (key, value) in tags)
            {
                if (text.Length > 0)
                {
                    text.Append(',');
                }
                var escaped = (Convert.ToString(value, CultureInfo.InvariantCulture) ?? "")
                    .Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
                text.Append(key).Append("=\"").Append(escaped).Append('"');
            }
            return text.ToString();
        }
    }

    private sealed class Series((string?, string?, string?) key, string labels, int buckets)
    {
        public (string?, string?, string?) Key { get; } = key;

        private readonly long[] _counts = new long[buckets];
        private long _sumBits;

        public string Labels { get; } = labels;

        public void Add(int bucket, double value)
        {
            Interlocked.Increment(ref _counts[bucket]);
            var seen = Volatile.Read(ref _sumBits);
            while (true)
            {
                var next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(seen) + value);
                var found = Interlocked.CompareExchange(ref _sumBits, next, seen);
                if (found == seen)
                {
                    return;
                }
                seen = found;
            }
        }

        public (long[] Counts, double Sum) Read()
        {
            var counts = new long[_counts.Length];
            for (var i = 0; i < counts.Length; i++)
            {
                counts[i] = Volatile.Read(ref _counts[i]);
            }
            return (counts, BitConverter.Int64BitsToDouble(Volatile.Read(ref _sumBits)));
        }
    }
}
