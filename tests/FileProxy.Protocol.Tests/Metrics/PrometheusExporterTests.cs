using System.Diagnostics.Metrics;
using FileProxy.Hosting;
using FileProxy.Protocol.Metrics;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Metrics;

public sealed class PrometheusExporterTests
{
    [Fact]
    public void Histogram_buckets_are_cumulative_and_a_value_on_a_bound_counts_in_its_bucket()
    {
        using var meter = new Meter("test");
        var histogram = meter.CreateHistogram("x.duration", "s", "help", tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.01] });
        using var exporter = new PrometheusExporter(meter);

        histogram.Record(0.001, new KeyValuePair<string, object?>("op", "get"));
        histogram.Record(0.005, new KeyValuePair<string, object?>("op", "get"));
        histogram.Record(7, new KeyValuePair<string, object?>("op", "get"));

        exporter.Scrape().Split('\n').Should().ContainInOrder(
            "# HELP x_duration_seconds help",
            "# TYPE x_duration_seconds histogram",
            "x_duration_seconds_bucket{op=\"get\",le=\"0.001\"} 1",
            "x_duration_seconds_bucket{op=\"get\",le=\"0.01\"} 2",
            "x_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 3",
            "x_duration_seconds_sum{op=\"get\"} 7.006",
            "x_duration_seconds_count{op=\"get\"} 3");
    }

    [Fact]
    public void Counters_get_a_total_suffix_gauges_do_not_and_label_values_are_escaped()
    {
        using var meter = new Meter("test");
        meter.CreateObservableCounter("x.requests", () => 5L);
        meter.CreateObservableGauge("x.entries", () => -1L);
        var histogram = meter.CreateHistogram<double>("x.size");
        using var exporter = new PrometheusExporter(meter);
        histogram.Record(1, new KeyValuePair<string, object?>("name", "a\"b\\c\nd"));

        var text = exporter.Scrape();

        text.Should().Contain("# TYPE x_requests_total counter\nx_requests_total 5\n");
        text.Should().Contain("# TYPE x_entries gauge\nx_entries -1\n");
        text.Should().Contain("x_size_count{name=\"a\\\"b\\\\c\\nd\"} 1");
    }

    [Fact]
    public void Only_the_given_meter_instance_is_exported()
    {
        using var mine = new Meter(ServerMetrics.MeterName);
        using var other = new Meter(ServerMetrics.MeterName);
        mine.CreateObservableCounter("fileproxy.mine", () => 1L);
        other.CreateObservableCounter("fileproxy.other", () => 2L);
        using var exporter = new PrometheusExporter(mine);

        var text = exporter.Scrape();

        text.Should().Contain("fileproxy_mine_total 1").And.NotContain("fileproxy_other");
    }

    [Fact]
    public void Server_metrics_read_the_stats_counters_and_label_requests()
    {
        long requests = 3;
        using var metrics = new ServerMetrics(() => [new("requests", requests), new("entries", 2)]);
        using var exporter = new PrometheusExporter(metrics.Meter);
        requests = 4;

        metrics.Enabled.Should().BeTrue("the exporter listens");
        metrics.RecordRequest(Opcode.Get, StatusCode.UpstreamUnavailable, cut: false, source: null, 0.5, 0.25);
        metrics.RecordRequest(Opcode.Get, StatusCode.Ok, cut: true, ResponseSource.CacheCoalesced, 0.5, null);
        var text = exporter.Scrape();

        text.Should().Contain("fileproxy_requests_total 4\n", "the counter is read at the scrape, from the same field as STATS");
        text.Should().Contain("# TYPE fileproxy_entries gauge\nfileproxy_entries 2\n");
        text.Should().Contain("fileproxy_request_duration_seconds_count{operation=\"get\",status=\"upstream_unavailable\",cache=\"none\"} 1");
        text.Should().Contain("fileproxy_time_to_first_byte_seconds_count{operation=\"get\",status=\"upstream_unavailable\",cache=\"none\"} 1");
        text.Should().Contain("fileproxy_request_duration_seconds_count{operation=\"get\",status=\"cut\",cache=\"coalesced\"} 1");
        var allocated = long.Parse(text.Split('\n').Single(line => line.StartsWith("fileproxy_process_allocated_bytes_total ", StringComparison.Ordinal))
            .Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        allocated.Should().BeGreaterThan(0).And.BeLessThanOrEqualTo(GC.GetTotalAllocatedBytes());
        text.Should().MatchRegex(@"\nfileproxy_process_collections_total \d+\n").And.MatchRegex(@"\nfileproxy_process_collection_pause_microseconds_total \d+\n");
        text.Should().NotContain("fileproxy_time_to_first_byte_seconds_count{operation=\"get\",status=\"cut\"", "nothing was sent");
    }

    [Theory]
    [InlineData(Opcode.Get, "get")]
    [InlineData(Opcode.Purge, "purge")]
    [InlineData(Opcode.GetResponse, "other")]
    [InlineData((Opcode)0x7e, "other")]
    public void Operation_labels_are_request_opcodes_or_other(Opcode opcode, string label)
    {
        ServerMetrics.OperationLabel(opcode).Should().Be(label);
    }

    [Fact]
    public void Without_a_listener_recording_is_off()
    {
        using var metrics = new ServerMetrics(() => []);

        metrics.Enabled.Should().BeFalse();
    }

    [Theory]
    [InlineData("127.0.0.1:9464", true)]
    [InlineData("0.0.0.0:0", true)]
    [InlineData("[::1]:9464", true)]
    [InlineData("127.0.0.1", false)]
    [InlineData("127.0.0.1:", false)]
    [InlineData(":9464", false)]
    [InlineData("::1:9464", false)]
    [InlineData("127.0.0.1:65536", false)]
    [InlineData("localhost:9464", false)]
    public void Metrics_addresses_need_an_IP_address_and_a_port(string text, bool valid)
    {
        ListeningOptions.TryParseEndPoint(text, out _).Should().Be(valid);
    }
}
