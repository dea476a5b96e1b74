using System.Net.Sockets;
using Serilog;

namespace FileProxy.Protocol.Server;

/// <summary>
/// Failed accepts in a row: how long to pause before the next try (10 ms, doubling to 1 s, back to 10 ms after a
/// success) and when to say so (the first failure, then one line with a count per <see cref="LogInterval"/>, never
/// a stack trace: the cause is the system's state, not our code).
/// </summary>
internal sealed class AcceptFailures(ILogger log)
{
    public static readonly TimeSpan FirstPause = TimeSpan.FromMilliseconds(10);
    public static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(5);

    private TimeSpan _pause = TimeSpan.Zero;
    private long _streakStarted;
    private long _lastLogged;
    private long _inStreak;
    private long _sinceLogged;

    /// <summary>Records a failed accept; returns how long to wait before the next.</summary>
    public TimeSpan Failed(SocketException e)
    {
        var now = Environment.TickCount64;
        _pause = _pause == TimeSpan.Zero ? FirstPause : TimeSpan.FromTicks(Math.Min(_pause.Ticks * 2, MaxPause.Ticks));
        _inStreak++;
        _sinceLogged++;
        if (_inStreak == 1)
        {
            _streakStarted = now;
            _lastLogged = now;
            _sinceLogged = 0;
            log.Warning("Accept failed: {SocketError} ({Reason}); pausing accepts, up to {MaxPauseMs} ms at a time, until one succeeds",
                e.SocketErrorCode, e.Message, MaxPause.TotalMilliseconds);
        }
        else if (now - _lastLogged >= LogInterval.TotalMilliseconds)
        {
            log.Warning("Accept failed {Failures} more times in the last {Seconds:0.#} s: {SocketError} ({Reason}); still pausing",
                _sinceLogged, (now - _lastLogged) / 1000.0, e.SocketErrorCode, e.Message);
            _lastLogged = now;
            _sinceLogged = 0;
        }
        return _pause;
    }

    /// <summary>Records a successful accept: the next failure starts a new streak.</summary>
    public void Succeeded()
    {
        if (_inStreak == 0)
        {
            return;
        }
        log.Information("Accepting again after {Failures} failed accepts over {Seconds:0.#} s",
            _inStreak, (Environment.TickCount64 - _streakStarted) / 1000.0);
        _inStreak = 0;
        _sinceLogged = 0;
        _pause = TimeSpan.Zero;
    }
}
