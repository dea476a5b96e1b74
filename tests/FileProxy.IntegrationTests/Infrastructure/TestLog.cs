using System.Globalization;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>Routes Serilog to xunit's per-test output, so a failing test shows the servers' log.</summary>
public static class TestLog
{
    public static ILogger For(ITestOutputHelper output, string component) =>
        new LoggerConfiguration()
            .MinimumLevel.Debug()
            .WriteTo.Sink(new OutputSink(output))
            .CreateLogger()
            .ForContext("Component", component);

    private sealed class OutputSink(ITestOutputHelper output) : ILogEventSink
    {
        public void Emit(LogEvent logEvent)
        {
            var component = logEvent.Properties.TryGetValue("Component", out var value) ? value.ToString().Trim('"') : "?";
            try
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{logEvent.Timestamp:HH:mm:ss.fff} [{logEvent.Level}] {component}: {logEvent.RenderMessage(CultureInfo.InvariantCulture)} {logEvent.Exception}"));
            }
            catch (InvalidOperationException)
            {
                // The test already finished; background work logging late is not a failure.
            }
        }
    }
}
