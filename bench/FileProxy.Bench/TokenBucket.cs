using System.Diagnostics;

namespace FileProxy.Bench;

/// <summary>
/// One byte rate shared by every caller (a virtual-clock token bucket): each reservation moves the clock on by
/// bytes / rate and the caller waits until the clock, less a small burst allowance, catches up with real time.
/// Over any stretch longer than the burst the total never exceeds the rate, however many connections share it.
/// </summary>
internal sealed class TokenBucket(long bytesPerSecond, TimeSpan burst)
{
    private readonly Lock _lock = new();
    private readonly long _start = Stopwatch.GetTimestamp();
    private double _clock; // seconds since _start up to which bandwidth is already handed out

    /// <summary>Takes <paramref name="bytes"/> from the bucket and returns how long to wait before sending them.</summary>
    public TimeSpan Reserve(int bytes)
    {
        var now = Stopwatch.GetElapsedTime(_start).TotalSeconds;
        double wait;
        lock (_lock)
        {
            _clock = Math.Max(_clock, now - burst.TotalSeconds) + (double)bytes / bytesPerSecond;
            wait = _clock - now;
        }
        return wait > 0 ? TimeSpan.FromSeconds(wait) : TimeSpan.Zero;
    }
}
