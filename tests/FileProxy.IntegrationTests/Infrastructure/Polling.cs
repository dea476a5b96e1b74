using System.Diagnostics;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>Waiting for a condition that becomes true in the background (a file deleted after the answer left).</summary>
public static class Polling
{
    /// <summary>Returns once <paramref name="condition"/> holds or <paramref name="within"/> has passed, whichever
    /// comes first; it never throws for the timeout, so assert the condition afterwards to get a useful message.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan within, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        while (!condition() && stopwatch.Elapsed < within)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), cancellationToken);
        }
    }
}
