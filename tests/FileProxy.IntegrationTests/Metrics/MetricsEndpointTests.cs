using System.Globalization;
using System.Text.RegularExpressions;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Metrics;

/// <summary>The real origin and proxy with --metrics-listen: the endpoint's port is the one the program logs (port 0
/// asked for), and its figures move with the traffic.</summary>
public sealed partial class MetricsEndpointTests(ITestOutputHelper output)
{
    private const string Miss = "operation=\"get\",status=\"ok\",cache=\"miss\"";
    private const string Hit = "operation=\"get\",status=\"ok\",cache=\"hit\"";

    [Fact]
    public async Task The_proxy_s_figures_move_during_and_after_a_transfer_a_miss_then_a_hit()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var root = new TempDirectory("fileproxy-root");
        using var cache = new TempDirectory("fileproxy-cache");
        // 64 MiB: more than the socket buffers between proxy and client can hold (the proxy's 4 MiB send buffer,
        // doubled by the kernel, and the reader's autotuned receive buffer), so the proxy cannot finish the answer
        // while the test holds its reading; with 8 MiB it once did, and the request counted as answered "during".
        const int size = 64 * 1024 * 1024;
        root.Write("big.bin", Fetch.RandomBytes(size, seed: 10));
        await using var origin = ChildProgram.Start("Server", output, ["--root", root.Path, "--port", "0", "--listen", "127.0.0.1"]);
        var originPort = PortOf(await origin.WaitForLineAsync(line => ListeningLine().IsMatch(line), deadline.Token), ListeningLine());
        await using var proxy = ProxyProcess.Start(originPort, cache.Path, output, "--metrics-listen", "127.0.0.1:0");
        await proxy.WaitUntilListeningAsync(deadline.Token);
        var metricsPort = PortOf(await proxy.Program.WaitForLineAsync(line => MetricsLine().IsMatch(line), deadline.Token), MetricsLine());
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}") };

        var before = await ScrapeAsync(http, deadline.Token);
        before["fileproxy_requests_total"].Should().Be(0);
        before["fileproxy_cache_misses_total"].Should().Be(0);
        before.Should().NotContainKey($"fileproxy_request_duration_seconds_count{{{Miss}}}");

        byte[] body;
        await using (var get = await StreamingGet.StartAsync(proxy.Port, "big.bin", deadline.Token))
        {
            (await get.ReadSomeAsync(deadline.Token)).Should().BePositive();
            var during = await ScrapeAsync(http, deadline.Token);
            during["fileproxy_requests_total"].Should().Be(1);
            during["fileproxy_cache_misses_total"].Should().Be(1);
            during["fileproxy_upstream_fetches_total"].Should().Be(1);
            during["fileproxy_connections_active"].Should().BeGreaterThanOrEqualTo(1);
            during.GetValueOrDefault($"fileproxy_request_duration_seconds_count{{{Miss}}}").Should().Be(0,
                "a request is measured once it is answered in full");
            body = await get.ReadToEndAsync(deadline.Token);
        }
        body.Length.Should().Be(size);
        var afterMiss = await ScrapeUntilAsync(http, $"fileproxy_request_duration_seconds_count{{{Miss}}}", 1, deadline.Token);
        afterMiss[$"fileproxy_time_to_first_byte_seconds_count{{{Miss}}}"].Should().Be(1);
        afterMiss[$"fileproxy_request_duration_seconds_sum{{{Miss}}}"].Should().BePositive();
        afterMiss[$"fileproxy_request_duration_seconds_bucket{{{Miss},le=\"+Inf\"}}"].Should().Be(1);
        afterMiss["fileproxy_bytes_served_total"].Should().Be(size);
        afterMiss["fileproxy_bytes_fetched_total"].Should().Be(size);
        afterMiss["fileproxy_entries"].Should().Be(1);

        await using (var again = await StreamingGet.StartAsync(proxy.Port, "big.bin", deadline.Token))
        {
            (await again.ReadToEndAsync(deadline.Token)).Length.Should().Be(size);
        }
        var afterHit = await ScrapeUntilAsync(http, $"fileproxy_request_duration_seconds_count{{{Hit}}}", 1, deadline.Token);
        afterHit["fileproxy_cache_hits_total"].Should().Be(1);
        afterHit["fileproxy_cache_misses_total"].Should().Be(1, "the second request was a hit");
        afterHit["fileproxy_upstream_fetches_total"].Should().Be(1);
        afterHit["fileproxy_requests_total"].Should().Be(2);
        afterHit["fileproxy_bytes_served_total"].Should().Be(2L * size);
        afterHit[$"fileproxy_time_to_first_byte_seconds_count{{{Hit}}}"].Should().Be(1);
        afterHit[$"fileproxy_request_duration_seconds_count{{{Miss}}}"].Should().Be(1);
    }

    [Fact]
    public async Task Every_STATS_counter_is_exported_with_the_value_STATS_gives()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var root = new TempDirectory("fileproxy-root");
        using var cache = new TempDirectory("fileproxy-cache");
        root.Write("a.bin", Fetch.RandomBytes(100_000, seed: 11));
        await using var origin = ChildProgram.Start("Server", output, ["--root", root.Path, "--port", "0", "--listen", "127.0.0.1"]);
        var originPort = PortOf(await origin.WaitForLineAsync(line => ListeningLine().IsMatch(line), deadline.Token), ListeningLine());
        await using var proxy = ProxyProcess.Start(originPort, cache.Path, output, "--metrics-listen", "127.0.0.1:0");
        await proxy.WaitUntilListeningAsync(deadline.Token);
        var metricsPort = PortOf(await proxy.Program.WaitForLineAsync(line => MetricsLine().IsMatch(line), deadline.Token), MetricsLine());
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}") };
        await using var client = await FileProxy.Protocol.Client.FileClient.ConnectAsync("127.0.0.1", proxy.Port, cancellationToken: deadline.Token);
        await Fetch.GetAsync(client, "a.bin", deadline.Token);
        await Fetch.GetAsync(client, "a.bin", deadline.Token);
        await Poll.UntilAsync(async () => (await client.StatsAsync(deadline.Token)).Counters.Single(c => c.Key == "fills_in_progress").Value == 0,
            "the fill is over", deadline.Token);

        var stats = (await client.StatsAsync(deadline.Token)).Counters;
        var figures = await ScrapeAsync(http, deadline.Token);

        stats.Should().HaveCountGreaterThan(20);
        foreach (var (name, value) in stats.Where(counter => counter.Key is not ("requests" or "connections_active")))
        {
            var exported = figures.GetValueOrDefault($"fileproxy_{name}_total", figures.GetValueOrDefault($"fileproxy_{name}", double.NaN));
            exported.Should().Be(value, "STATS {0} and its metric read the same field, and nothing ran in between", name);
        }
        figures["fileproxy_requests_total"].Should().Be(stats.Single(c => c.Key == "requests").Value,
            "the STATS requests, counted as they arrive, include the STATS asked last");
        figures["fileproxy_cache_hits_total"].Should().Be(1);
    }

    [Fact]
    public async Task The_endpoint_answers_only_GET_of_metrics()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var root = new TempDirectory("fileproxy-root");
        await using var origin = ChildProgram.Start("Server", output,
            ["--root", root.Path, "--port", "0", "--listen", "127.0.0.1", "--metrics-listen", "127.0.0.1:0"]);
        var metricsPort = PortOf(await origin.WaitForLineAsync(line => MetricsLine().IsMatch(line), deadline.Token), MetricsLine());
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}") };

        using var metrics = await http.GetAsync(new Uri("/metrics", UriKind.Relative), deadline.Token);
        using var other = await http.GetAsync(new Uri("/", UriKind.Relative), deadline.Token);
        using var post = await http.PostAsync(new Uri("/metrics", UriKind.Relative), new StringContent(""), deadline.Token);

        metrics.StatusCode.Should().Be(System.Net.HttpStatusCode.OK);
        metrics.Content.Headers.ContentType!.ToString().Should().StartWith("text/plain; version=0.0.4");
        (await metrics.Content.ReadAsStringAsync(deadline.Token)).Should().Contain("# TYPE fileproxy_digests_computed_total counter");
        other.StatusCode.Should().Be(System.Net.HttpStatusCode.NotFound);
        post.StatusCode.Should().Be(System.Net.HttpStatusCode.MethodNotAllowed);
    }

    [Fact]
    public async Task Every_metric_the_Grafana_dashboard_queries_is_one_the_proxy_exports()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var origin = new OwnedPort();
        using var cache = new TempDirectory("fileproxy-cache");
        var dashboard = File.ReadAllText(Repository.Combine("docs", "grafana", "fileproxy.json"));
        var queried = System.Text.Json.JsonDocument.Parse(dashboard).RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(panel => panel.GetProperty("targets").EnumerateArray())
            .SelectMany(target => MetricName().Matches(target.GetProperty("expr").GetString()!).Select(match => match.Value))
            .ToHashSet();
        await using var proxy = ProxyProcess.Start(origin.Port, cache.Path, output, "--metrics-listen", "127.0.0.1:0");
        var metricsPort = PortOf(await proxy.Program.WaitForLineAsync(line => MetricsLine().IsMatch(line), deadline.Token), MetricsLine());
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}") };

        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative), deadline.Token);

        var families = text.Split('\n').Where(line => line.StartsWith("# TYPE ", StringComparison.Ordinal))
            .ToDictionary(line => line.Split(' ')[2], line => line.Split(' ')[3]);
        queried.Should().HaveCountGreaterThan(10);
        foreach (var name in queried)
        {
            var histogram = Regex.Replace(name, "_(bucket|count|sum)$", "");
            (families.ContainsKey(name) || families.GetValueOrDefault(histogram) == "histogram").Should().BeTrue(
                "the dashboard queries {0}, which the proxy must export", name);
        }
    }

    [Theory]
    [InlineData("Server")]
    [InlineData("Proxy")]
    public async Task A_metrics_port_in_use_is_a_start_error_that_names_it(string program)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var origin = new OwnedPort();
        using var taken = new OwnedPort();
        using var listener = taken.Listen();
        using var directory = new TempDirectory("fileproxy-metrics");
        var metricsAt = $"127.0.0.1:{taken.Port.ToString(CultureInfo.InvariantCulture)}";
        string[] arguments = program == "Server"
            ? ["--root", directory.Path, "--port", "0", "--listen", "127.0.0.1", "--metrics-listen", metricsAt]
            : ["127.0.0.1", $"{origin.Port}", "0", "--listen", "127.0.0.1", "--cache-dir", directory.Combine("cache"), "--metrics-listen", metricsAt];

        var run = await ChildProgram.RunAsync(program, output, deadline.Token, arguments);

        run.ExitCode.Should().Be(1, "a start error exits 1 (README: exit codes of the server and the proxy)");
        run.Stderr.Should().Contain($"--metrics-listen: cannot listen on {metricsAt}: Address already in use");
        run.Stderr.Should().NotContain("Listening on", "nothing is served when the metrics port cannot be had");
    }

    [Fact]
    public async Task A_metrics_address_without_a_port_is_a_usage_error()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var run = await ChildProgram.RunAsync("Server", output, deadline.Token, "--metrics-listen", "127.0.0.1");

        run.ExitCode.Should().Be(2);
        run.Stderr.Should().Contain("--metrics-listen '127.0.0.1' is not ADDR:PORT");
    }

    private static int PortOf(string line, Regex regex) =>
        int.Parse(regex.Match(line).Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>Scrapes until a series reaches a value: a request is measured just after its last byte is handed to
    /// the socket, which the client may read first.</summary>
    private static async Task<Dictionary<string, double>> ScrapeUntilAsync(HttpClient http, string series, double value, CancellationToken cancellationToken)
    {
        Dictionary<string, double> figures = [];
        await Poll.UntilAsync(async () =>
        {
            figures = await ScrapeAsync(http, cancellationToken);
            return figures.GetValueOrDefault(series) >= value;
        }, $"{series} reached {value}", cancellationToken);
        figures[series].Should().Be(value);
        return figures;
    }

    /// <summary>Every sample of a scrape, by series ("name{labels}"), checking that each line is well formed.</summary>
    private static async Task<Dictionary<string, double>> ScrapeAsync(HttpClient http, CancellationToken cancellationToken)
    {
        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative), cancellationToken);
        var figures = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('#'))
            {
                line.Should().MatchRegex(@"^# (HELP|TYPE) fileproxy_[a-z_]+ ");
                continue;
            }
            var match = SampleLine().Match(line);
            match.Success.Should().BeTrue("'{0}' is a sample line", line);
            figures.Add(match.Groups[1].Value, double.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture));
        }
        return figures;
    }

    [GeneratedRegex(@"fileproxy_[a-z_]+")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();

    [GeneratedRegex(@"Serving metrics at http://127\.0\.0\.1:(\d+)/metrics")]
    private static partial Regex MetricsLine();

    [GeneratedRegex(@"^(fileproxy_[a-z_]+(?:\{[^}]*\})?) (-?[0-9.e+-]+)$")]
    private static partial Regex SampleLine();
}
