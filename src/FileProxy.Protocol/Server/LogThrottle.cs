namespace FileProxy.Protocol.Server;

/// <summary>At most one log line per interval for an event a peer or the system can repeat at will (a refused
/// connection, a failed accept); the line that is written counts the ones that were not.</summary>
internal sealed class LogThrottle(TimeSpan interval)
{
    private readonly Lock _lock = new();
    private long _lastLogged = long.MinValue;
    private long _suppressed;

    /// <summary>True when this occurrence should be logged; <paramref name="suppressed"/> is how many were not
    /// since the last one that was.</summary>
    public bool ShouldLog(out long suppressed)
    {
        var now = Environment.TickCount64;
        lock (_lock)
        {
            if (_lastLogged != long.MinValue && now - _lastLogged < interval.TotalMilliseconds)
            {
                _suppressed++;
                suppressed = 0;
                return false;
            }
            _lastLogged = now;
            suppressed = _suppressed;
            _suppressed = 0;
            return true;
        }
    }
}
