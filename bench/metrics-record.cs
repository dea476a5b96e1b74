#:project ../src/FileProxy.Protocol/FileProxy.Protocol.csproj
#:property PublishAot=false
// What recording one request's metrics costs, without the noise of a network benchmark: RecordRequest (both
// histograms, three labels) in a loop on N threads, with no listener (no --metrics-listen) and with the exporter
// attached, in nanoseconds per request. Run: dotnet run -c Release bench/metrics-record.cs [THREADS]
using System.Diagnostics;
using FileProxy.Protocol.Metrics;
using FileProxy.Protocol.Wire;

var threads = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : Environment.ProcessorCount;
const int PerThread = 5_000_000;
using var metrics = new ServerMetrics(() => [new("requests", 0)]);
for (var round = 0; round < 3; round++)
{
    Console.WriteLine($"no listener:   {Measure(metrics, threads):0.0} ns per request ({threads} threads)");
    using var exporter = new PrometheusExporter(metrics.Meter);
    Console.WriteLine($"with exporter: {Measure(metrics, threads):0.0} ns per request ({threads} threads)");
}

static double Measure(ServerMetrics metrics, int threads)
{
    var stopwatch = Stopwatch.StartNew();
    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
    {
        for (var i = 0; i < PerThread; i++)
        {
            if (metrics.Enabled)
            {
                metrics.RecordRequest(Opcode.Get, StatusCode.Ok, cut: false, (i & 7) == 0 ? ResponseSource.CacheMiss : ResponseSource.CacheHit,
                    0.00004 + (i & 15) * 0.00001, 0.00002);
            }
        }
    });
    return stopwatch.Elapsed.TotalNanoseconds / PerThread; // wall time per request on each thread
}
