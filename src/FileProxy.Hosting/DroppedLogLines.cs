using Serilog;
using Serilog.Sinks.Async;

namespace FileProxy.Hosting;

/// <summary>
/// Watches the background log queue of a server or proxy (<see cref="CommandLine.ConfigureLogging"/>): when standard
/// error is not being read (a paused terminal, a stalled pipe) the queue fills and further lines are dropped rather
/// than stopping every connection's thread on a write. Once the queue has room again, one warning says how many lines
/// were lost since the last such warning.
/// </summary>
internal sealed class DroppedLogLines : IAsyncLogEventSinkMonitor
{
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private IAsyncLogEventSinkInspector? _inspector;
    private ITimer? _timer;
    private long _reported;
    private long _droppedWhenStopped;

    /// <summary>Lines dropped since the process started logging.</summary>
    public long Count
    {
        get
        {
            lock (_lock)
            {
                return _inspector?.DroppedMessagesCount ?? _droppedWhenStopped;
            }
        }
    }

    public void StartMonitoring(IAsyncLogEventSinkInspector inspector)
    {
        lock (_lock)
        {
            _inspector = inspector;
            _timer = TimeProvider.System.CreateTimer(_ => Check(), null, Period, Period);
        }
    }

    public void StopMonitoring(IAsyncLogEventSinkInspector inspector)
    {
        lock (_lock)
        {
            _timer?.Dispose();
            _timer = null;
            _droppedWhenStopped = inspector.DroppedMessagesCount;
            _inspector = null;
        }
    }

    private void Check()
    {
        long lost;
        lock (_lock)
        {
            // Only once the queue has drained to half: a warning written into a full queue would be dropped too.
            if (_inspector is not { } inspector || inspector.Count > inspector.BufferSize / 2
                || (lost = inspector.DroppedMessagesCount - _reported) == 0)
            {
                return;
            }
            _reported += lost;
        }
        Log.Warning("{Count} log lines were dropped: standard error was not being read (a paused terminal or a stalled pipe)",
            lost);
    }
}
