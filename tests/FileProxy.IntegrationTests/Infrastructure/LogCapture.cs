using System.Globalization;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// An <see cref="ITestOutputHelper"/> to hand to <see cref="Cluster.StartAsync"/> in place of xunit's: lines still
/// reach the test output, and the test can also look for the log lines a server wrote.
/// </summary>
public sealed class LogCapture(ITestOutputHelper output) : ITestOutputHelper
{
    private readonly Lock _lock = new();
    private readonly List<string> _lines = [];

    public void WriteLine(string message)
    {
        try
        {
            output.WriteLine(message);
        }
        catch (InvalidOperationException)
        {
            // The test already finished; background work logging late is not a failure.
        }
        lock (_lock)
        {
            _lines.Add(message);
        }
    }

    public void WriteLine(string format, params object[] args) =>
        WriteLine(string.Format(CultureInfo.InvariantCulture, format, args));

    /// <summary>Lines written so far that contain <paramref name="text"/>.</summary>
    public IReadOnlyList<string> LinesContaining(string text)
    {
        lock (_lock)
        {
            return [.. _lines.Where(line => line.Contains(text, StringComparison.Ordinal))];
        }
    }
}
