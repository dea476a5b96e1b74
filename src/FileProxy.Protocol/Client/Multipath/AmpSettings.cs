namespace FileProxy.Protocol.Client.Multipath;

/// <summary>Thresholds of the <see cref="AmpController"/>; docs/MULTIPATH.md explains each.</summary>
public sealed record AmpSettings
{
    /// <summary>Shortest sampling interval; the interval is max(this, 2 RTT of the slowest carrying subflow).</summary>
    public TimeSpan MinInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Intervals skipped after a change of the carrying set (slow start, requests still in flight).</summary>
    public int RampIntervals { get; init; } = 1;

    /// <summary>Intervals a probe waits at most for the parked subflows to receive what they had asked for; a slow
    /// path that takes longer is measured around.</summary>
    public int DrainIntervals { get; init; } = 5;

    /// <summary>Intervals the best subflow sends alone in a probe (every one costs the others' share, so few).</summary>
    public int ProbeIntervals { get; init; } = 2;

    /// <summary>A probe ends after its first interval when the others added at least this much (fraction).</summary>
    public double ClearGain { get; init; } = 0.5;

    /// <summary>Intervals averaged for one goodput figure.</summary>
    public int MeasureIntervals { get; init; } = 3;

    /// <summary>Intervals in a row in which every carrying subflow is congested before the controller checks
    /// whether the extra subflows pay for themselves.</summary>
    public int CongestedIntervals { get; init; } = 2;

    /// <summary>Goodput an extra subflow must add (fraction) to keep sending.</summary>
    public double Gain { get; init; } = 0.10;

    /// <summary>An RTT counts as risen above its base when it exceeds base × this and base + <see cref="RttRiseFloor"/>.</summary>
    public double RttRiseFactor { get; init; } = 1.5;

    public TimeSpan RttRiseFloor { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>A parked subflow's path shares the sending one's bottleneck when a request on it, idle, waits at
    /// least this fraction of the queue the sending subflow sees (and <see cref="RttRiseFloor"/>).</summary>
    public double SharedQueue { get; init; } = 0.5;

    /// <summary>How often a parked, idle subflow times a STATS request during a probe (the verdict on a shared bottleneck).</summary>
    public TimeSpan ProbePingInterval { get; init; } = TimeSpan.FromMilliseconds(30);

    /// <summary>How often a parked, idle subflow times a STATS request otherwise: it keeps the connection from the server's
    /// idle timeout (120 s by default) and tells the next trial whether the path still shares the bottleneck.</summary>
    public TimeSpan ParkedPingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Clean intervals (no packet lost on the carrying subflows) before a parked subflow gets a trial.</summary>
    public int CleanIntervals { get; init; } = 3;

    /// <summary>Wait before the next trial; doubles after each failed trial up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>While several subflows carry data, a fall of the total goodput by this fraction below its best
    /// (with every subflow congested) makes the controller check again whether they still pay for themselves.</summary>
    public double Drop { get; init; } = 0.25;
}
