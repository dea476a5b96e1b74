using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Client;

/// <summary>The client's backoff and what it counts as a passing failure.</summary>
public sealed class RetryPolicyTests
{
    [Theory]
    [InlineData(1, 125, 250)]
    [InlineData(2, 250, 500)]
    [InlineData(3, 500, 1000)]
    [InlineData(4, 1000, 2000)]
    [InlineData(5, 2000, 4000)]
    [InlineData(6, 2000, 4000)]
    [InlineData(40, 2000, 4000)]
    public void Each_wait_is_between_half_and_all_of_the_doubled_base_capped(int retry, int leastMs, int mostMs)
    {
        var policy = new RetryPolicy();
        var random = new Random(retry);

        var delays = Enumerable.Range(0, 1000).Select(_ => policy.DelayBefore(retry, random).TotalMilliseconds).ToList();

        delays.Should().OnlyContain(ms => ms >= leastMs && ms <= mostMs);
        (delays.Max() - delays.Min()).Should().BeGreaterThan((mostMs - leastMs) * 0.8, "the jitter spreads the waits over the whole range");
    }

    [Fact]
    public void The_default_is_three_retries_from_250_ms_up_to_4_s()
    {
        var policy = new RetryPolicy();

        policy.Retries.Should().Be(3);
        policy.BaseDelay.Should().Be(TimeSpan.FromMilliseconds(250));
        policy.MaxDelay.Should().Be(TimeSpan.FromSeconds(4));
        RetryPolicy.None.Retries.Should().Be(0);
    }

    [Theory]
    [InlineData(StatusCode.Busy, true)]
    [InlineData(StatusCode.UpstreamUnavailable, true)]
    [InlineData(StatusCode.NotFound, false)]
    [InlineData(StatusCode.BadRequest, false)]
    [InlineData(StatusCode.Forbidden, false)]
    [InlineData(StatusCode.RangeNotSatisfiable, false)]
    [InlineData(StatusCode.VersionMismatch, false)]
    [InlineData(StatusCode.UpstreamIntegrityError, false)]
    [InlineData(StatusCode.InternalError, false)]
    [InlineData(StatusCode.Unauthorized, false)]
    public void Only_Busy_and_UpstreamUnavailable_answers_are_passing(StatusCode status, bool transient) =>
        RetryPolicy.IsTransient(status).Should().Be(transient);

    [Fact]
    public void A_connection_failure_is_passing_but_a_protocol_violation_or_refused_token_is_not()
    {
        RetryPolicy.IsTransient(new UpstreamException("connection to 127.0.0.1:1 failed: Connection reset by peer")).Should().BeTrue();
        RetryPolicy.IsTransient(new UpstreamException("127.0.0.1:1 broke the protocol: bad magic") { Permanent = true }).Should().BeFalse();
        RetryPolicy.IsTransient(new UpstreamException("127.0.0.1:1 refused the token: wrong", StatusCode.Unauthorized)).Should().BeFalse();
        RetryPolicy.IsTransient(new UpstreamException("127.0.0.1:1 refused the token: busy", StatusCode.Busy)).Should().BeTrue();
    }
}
