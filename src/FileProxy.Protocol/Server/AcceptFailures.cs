using System.Net.Sockets;
using Serilog;

namespace FileProxy.Protocol.Server;

/// <summary>
/// Failed accepts: how long to pause before the next try (10 ms, doubling to 1 s, back to 10 ms after a success)
/// and when to say so: at most one line per <see cref="LogInterval"/>, with a count of the failures it stands for,
/// never a stack trace (the cause is the system's state, not our code). Used by the accept loop only.
/// </summary>
internal sealed class AcceptFailures(ILogger log)
{
    public static readonly TimeSpan FirstPause = TimeSpan.FromMilliseconds(10);
    public static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(5);

    /// <summary>A run of failures this long is an outage worth a line when it ends.</summary>
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(1);

    private readonly LogThrottle _throttle = new(LogInterval);
    private TimeSpan _pause = TimeSpan.Zero;
    private long _streakStarted;
    private long _inStreak;

    /// <summary>Records a failed accept; returns how long to wait before the next.</summary>
    public TimeSpan Failed(SocketException e)
    {
        _pause = _pause == TimeSpan.Zero ? FirstPause : TimeSpan.FromTicks(Math.Min(_pause.Ticks * 2, MaxPause.Ticks));
        if (_inStreak++ == 0)
        {
            _streakStarted = Environment.TickCount64;
        }
        if (_throttle.ShouldLog(out var suppressed))
        {
            log.Warning("Accept failed: {SocketError} ({Reason}); pausing accepts for {PauseMs} ms, up to {MaxPauseMs} ms at a time, until one succeeds ({Suppressed} more failed since the last such line)",
                e.SocketErrorCode, e.Message, _pause.TotalMilliseconds, MaxPause.TotalMilliseconds, suppressed);
        }
        return _pause;
    }

    /// <summary>Records a successful accept: the next failure pauses briefly again.</summary>
    public void Succeeded()
    {
        if (_inStreak == 0)
        {
            return;
        }
        var lasted = Environment.TickCount64 - _streakStarted;
        if (lasted >= Outage.TotalMilliseconds)
        {
            log.Information("Accepting again after {Failures} failed accepts over {Seconds:0.#} s", _inStreak, lasted / 1000.0);
        }
        _inStreak = 0;
        _pause = TimeSpan.Zero;
    }
}
