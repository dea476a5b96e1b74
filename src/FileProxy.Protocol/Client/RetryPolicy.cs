using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Client;

/// <summary>
/// How often and after how long a request that failed for a passing reason is tried again: up to
/// <see cref="Retries"/> more times, the n-th retry after <see cref="BaseDelay"/> × 2^(n−1), at most
/// <see cref="MaxDelay"/>, each wait drawn at random between half and all of that ("equal jitter": many clients that
/// failed together do not come back together, yet none comes back at once). With the defaults the waits are about
/// 0.25, 0.5, 1, 2, 4, 4, … s. Only passing failures are retried (<see cref="IsTransient(StatusCode)"/>): a missing
/// file, a refused name or bytes that fail their digest would fail the same way again.
/// </summary>
public sealed record RetryPolicy
{
    /// <summary>The client's default number of retries.</summary>
    public const int DefaultRetries = 3;

    /// <summary>No retry: the first failure is the answer.</summary>
    public static RetryPolicy None { get; } = new() { Retries = 0 };

    /// <summary>Tries after the first one.</summary>
    public int Retries { get; init; } = DefaultRetries;

    /// <summary>The wait before the first retry (before jitter).</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest wait before a retry (before jitter).</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>The wait before retry number <paramref name="retry"/> (1 for the first), between half and all of
    /// <see cref="BaseDelay"/> × 2^(retry−1), capped at <see cref="MaxDelay"/>.</summary>
    public TimeSpan DelayBefore(int retry, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retry, 1);
        ArgumentNullException.ThrowIfNull(random);
        var doublings = Math.Min(retry - 1, 30);
        var full = Math.Min(BaseDelay.Ticks * (1L << doublings), MaxDelay.Ticks);
        return TimeSpan.FromTicks(full / 2 + (long)(random.NextDouble() * (full - full / 2)));
    }

    /// <summary>Whether an answer with this status may be different a moment later: the peer is busy, or the
    /// proxy could not reach its origin.</summary>
    public static bool IsTransient(StatusCode status) => status is StatusCode.Busy or StatusCode.UpstreamUnavailable;

    /// <summary>Whether a failure to talk to the peer may pass: it could not be reached, the connection was cut or
    /// went silent. A peer that broke the protocol, failed TLS or refused the token would do the same again.</summary>
    public static bool IsTransient(UpstreamException failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        return !failure.Permanent && (failure.Status is not { } status || IsTransient(status));
    }
}
