using System.Net.Sockets;
using FileProxy.Protocol.Server;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace FileProxy.Protocol.Tests.Server;

/// <summary>Failed accepts pause the accept loop, doubling to a bound, and are logged once per interval.</summary>
public sealed class AcceptFailuresTests
{
    private static readonly SocketException OutOfDescriptors = new((int)SocketError.TooManyOpenSockets);

    [Fact]
    public void The_pause_doubles_from_10_ms_to_1_s_and_starts_again_after_a_success()
    {
        var failures = new AcceptFailures(new LoggerConfiguration().CreateLogger());

        var pauses = Enumerable.Range(0, 10).Select(_ => failures.Failed(OutOfDescriptors).TotalMilliseconds).ToList();
        failures.Succeeded();

        pauses.Should().Equal(10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000);
        failures.Failed(OutOfDescriptors).Should().Be(TimeSpan.FromMilliseconds(10));
    }

    [Fact]
    public void A_burst_of_failures_and_recoveries_logs_one_line()
    {
        var sink = new CountingSink();
        var failures = new AcceptFailures(new LoggerConfiguration().WriteTo.Sink(sink).CreateLogger());

        for (var i = 0; i < 10_000; i++)
        {
            failures.Failed(OutOfDescriptors);
            if (i % 3 == 0)
            {
                failures.Succeeded();
            }
        }

        sink.Events.Should().ContainSingle("one line per 5 s, however often accepts fail and recover")
            .Which.Exception.Should().BeNull("the cause is the system's state: no stack trace");
    }

    private sealed class CountingSink : ILogEventSink
    {
        public List<LogEvent> Events { get; } = [];

        public void Emit(LogEvent logEvent) => Events.Add(logEvent);
    }
}
