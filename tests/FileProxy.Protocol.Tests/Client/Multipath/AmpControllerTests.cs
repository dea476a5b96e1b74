using FileProxy.Protocol.Client.Multipath;

namespace FileProxy.Protocol.Tests.Client.Multipath;

/// <summary>The controller over simulated networks: each interval the network turns the sending set into samples.</summary>
public sealed class AmpControllerTests
{
    private const double MiB = 1024 * 1024;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan BaseRtt = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan QueuedRtt = TimeSpan.FromMilliseconds(21);

    /// <summary>Both subflows through one 12 MiB/s bottleneck: the rate is shared, every RTT includes the queue.</summary>
    private static double[] Shared(bool[] sending)
    {
        var count = sending.Count(s => s);
        return [.. sending.Select(s => s ? 12 * MiB / count : 0)];
    }

    /// <summary>Each subflow on its own 12 MiB/s path.</summary>
    private static double[] Disjoint(bool[] sending) => [.. sending.Select(s => s ? 12 * MiB : 0)];

    [Fact]
    public void Subflows_sharing_one_bottleneck_collapse_to_one_within_two_seconds()
    {
        var controller = new AmpController(2);
        var run = Simulate(controller, Shared, TimeSpan.FromSeconds(1.5));

        controller.Phase.Should().Be(AmpPhase.Collapsed);
        controller.Sending.Should().HaveCount(1);
        run.Select(d => d.Decision.Action).Should().StartWith(["probe", "collapse"]);
        run.Single(d => d.Decision.Action == "collapse").At.Should().BeLessThan(TimeSpan.FromSeconds(2));
        run.Single(d => d.Decision.Action == "collapse").Decision.Reason.Should().Contain("add only");
    }

    [Fact]
    public void A_parked_subflow_whose_idle_requests_wait_in_the_queue_shares_the_bottleneck_and_collapses_at_once()
    {
        var controller = new AmpController(2);
        var run = Simulate(controller, Shared, TimeSpan.FromSeconds(1.5), idleRtt: _ => QueuedRtt);

        run.Select(d => d.Decision.Action).Should().StartWith(["probe", "collapse"]);
        var collapse = run.Single(d => d.Decision.Action == "collapse");
        collapse.Decision.Reason.Should().Contain("shares the bottleneck of subflow 0").And.Contain("took 21.0 ms, 21.0 ms");
        (collapse.At - run[0].At).Should().BeLessThanOrEqualTo(TimeSpan.FromMilliseconds(300),
            "idle requests answer as soon as the other subflow drained (two slow ones in a row); no goodput needs measuring");
    }

    [Fact]
    public void One_slow_idle_request_on_a_path_of_its_own_is_not_believed()
    {
        // A busy machine delays one answer on an idle disjoint path: 36 ms, seen at a load of 30.
        var controller = new AmpController(2);
        var answers = 0;
        var run = Simulate(controller, Disjoint, TimeSpan.FromSeconds(2), idleRtt: _ => ++answers == 1 ? TimeSpan.FromMilliseconds(36) : BaseRtt);

        run.Select(d => d.Decision.Action).Should().Equal(["probe", "keep multipath"]);
        run[1].Decision.Reason.Should().Contain("on paths of their own");
    }

    [Fact]
    public void One_quick_idle_request_on_a_shared_bottleneck_is_not_believed()
    {
        // A shared queue drains for a moment: 1.4 ms beside an RTT of 11 ms, seen at a load of 40.
        var controller = new AmpController(2);
        var answers = 0;
        var run = Simulate(controller, SharedWithCompetitor, TimeSpan.FromSeconds(2),
            idleRtt: _ => ++answers == 1 ? BaseRtt : QueuedRtt);

        run.Select(d => d.Decision.Action).Should().StartWith(["probe", "collapse"]);
        run[1].Decision.Reason.Should().Contain("shares the bottleneck");
    }

    /// <summary>Both subflows and a competing single-path flow through one 12 MiB/s bottleneck: each connection gets
    /// an equal share, so two subflows take 2/3 and one takes 1/2.</summary>
    private static double[] SharedWithCompetitor(bool[] sending)
    {
        var count = sending.Count(s => s);
        return [.. sending.Select(s => s ? 12 * MiB / (count + 1) : 0)];
    }

    [Fact]
    public void Against_a_competing_flow_the_goodput_alone_would_keep_both_subflows()
    {
        // Why the idle requests are needed: the second subflow adds a third to our goodput, taken from the competitor.
        var controller = new AmpController(2);
        var run = Simulate(controller, SharedWithCompetitor, TimeSpan.FromSeconds(1.5));

        run.Select(d => d.Decision.Action).Should().Equal(["probe", "keep multipath"]);
        run[1].Decision.Reason.Should().Contain("+33 %");
    }

    [Fact]
    public void Against_a_competing_flow_the_shared_queue_collapses_and_no_trial_follows_while_it_lasts()
    {
        var controller = new AmpController(2);
        var run = Simulate(controller, SharedWithCompetitor, TimeSpan.FromSeconds(20), idleRtt: _ => QueuedRtt);

        run.Select(d => d.Decision.Action).Should().StartWith(["probe", "collapse"]);
        run.Skip(2).Should().OnlyContain(d => d.Decision.Action == "skip trial");
        run.Skip(2).Should().NotBeEmpty();
        controller.Sending.Should().ContainSingle();
    }

    [Fact]
    public void Once_the_parked_path_no_longer_shares_the_queue_a_trial_follows()
    {
        var controller = new AmpController(2);
        var shared = true;
        Simulate(controller, Shared, TimeSpan.FromSeconds(3), idleRtt: _ => shared ? QueuedRtt : BaseRtt);
        controller.Phase.Should().Be(AmpPhase.Collapsed);

        shared = false; // the routes changed: path 1 is a path of its own again
        var later = Simulate(controller, Disjoint, TimeSpan.FromSeconds(12), start: TimeSpan.FromSeconds(3),
            idleRtt: _ => shared ? QueuedRtt : BaseRtt);

        later.Should().Contain(d => d.Decision.Action == "keep trial");
        controller.Sending.Should().Equal(0, 1);
    }

    [Fact]
    public void Without_idle_round_trips_the_goodput_decides_after_the_usual_measurement()
    {
        var controller = new AmpController(2);
        var run = Simulate(controller, Shared, TimeSpan.FromSeconds(1.5), idleRtt: _ => TimeSpan.Zero);

        run.Select(d => d.Decision.Action).Should().StartWith(["probe", "collapse"]);
        run[1].Decision.Reason.Should().Contain("add only");
    }

    [Fact]
    public void Subflows_on_disjoint_paths_keep_sending_after_the_check()
    {
        var controller = new AmpController(2);
        var run = Simulate(controller, Disjoint, TimeSpan.FromSeconds(3));

        controller.Phase.Should().Be(AmpPhase.Multi);
        controller.Sending.Should().Equal(0, 1);
        run.Select(d => d.Decision.Action).Should().Equal(["probe", "keep multipath"],
            "after one check shows the second path doubles the goodput, the next waits for a fall in goodput");
        (run[1].At - run[0].At).Should().BeLessThanOrEqualTo(TimeSpan.FromMilliseconds(300),
            "a doubling is clear after one interval alone (plus one for the others to drain, and one for a second idle answer)");
    }

    [Fact]
    public void On_a_shared_bottleneck_a_best_subflow_still_growing_alone_does_not_end_the_probe_early()
    {
        var controller = new AmpController(2);
        var aloneIntervals = 0;
        // The best subflow takes one interval to grow into the capacity the other leaves: 7.5 of 12 MiB/s.
        double[] Network(bool[] sending)
        {
            var count = sending.Count(s => s);
            if (count == 1)
            {
                aloneIntervals++;
            }
            var total = count == 1 && aloneIntervals <= 2 ? 7.5 * MiB : 12 * MiB;
            return [.. sending.Select(s => s ? total / count : 0)];
        }

        var run = Simulate(controller, Network, TimeSpan.FromSeconds(1.5));

        run.Select(d => d.Decision.Action).Should().Equal(["probe", "collapse"]);
    }

    [Fact]
    public void Uncongested_subflows_are_never_checked()
    {
        var controller = new AmpController(2);
        var run = Simulate(controller, Disjoint, TimeSpan.FromSeconds(3), rtt: _ => BaseRtt);

        run.Should().BeEmpty();
        controller.Sending.Should().Equal(0, 1);
    }

    [Fact]
    public void A_trial_that_adds_nothing_backs_off_doubling_from_one_second()
    {
        var controller = new AmpController(2);
        var run = Simulate(controller, Shared, TimeSpan.FromSeconds(20));

        var trials = run.Where(d => d.Decision.Action == "trial").Select(d => d.At).ToList();
        var collapse = run.First(d => d.Decision.Action == "collapse").At;
        trials.Should().HaveCountGreaterThanOrEqualTo(3);
        (trials[0] - collapse).Should().BeCloseTo(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(350));
        run.Where(d => d.Decision.Action == "back off").Should().HaveCount(trials.Count - (controller.Phase == AmpPhase.Trial ? 1 : 0));
        var gaps = trials.Zip(trials.Skip(1), (a, b) => b - a).ToList();
        gaps[1].Should().BeGreaterThan(gaps[0] + TimeSpan.FromSeconds(0.8), "each failed trial doubles the back-off");
        controller.Sending.Should().HaveCount(1);
    }

    [Fact]
    public void A_path_that_speeds_up_is_taken_back_at_the_next_trial()
    {
        var controller = new AmpController(2);
        var fast = false;
        // Path 1 first carries almost nothing (so it is dropped), then as much as path 0.
        double[] Network(bool[] sending) => [sending[0] ? 12 * MiB : 0, sending[1] ? (fast ? 12 * MiB : 0.3 * MiB) : 0];
        var run = Simulate(controller, Network, TimeSpan.FromSeconds(4));
        run.Should().Contain(d => d.Decision.Action == "collapse");
        controller.Sending.Should().Equal(0);

        fast = true;
        var later = Simulate(controller, Network, TimeSpan.FromSeconds(10), start: TimeSpan.FromSeconds(4));

        later.Should().Contain(d => d.Decision.Action == "keep trial");
        controller.Sending.Should().Equal(0, 1);
    }

    [Fact]
    public void A_probe_in_which_one_subflow_beats_all_of_them_is_inconclusive_and_keeps_multipath()
    {
        var controller = new AmpController(2);
        var supply = 4 * MiB; // a proxy still filling: the subflows wait on it, then it speeds up
        double[] Network(bool[] sending)
        {
            var count = sending.Count(s => s);
            return [.. sending.Select(s => s ? supply / count : 0)];
        }
        var run = Simulate(controller, Network, TimeSpan.FromSeconds(0.4));
        run.Should().ContainSingle().Which.Decision.Action.Should().Be("probe");

        supply = 12 * MiB;
        run = Simulate(controller, Network, TimeSpan.FromSeconds(1.0), start: TimeSpan.FromSeconds(0.4));

        run.Should().ContainSingle().Which.Decision.Reason.Should().Contain("inconclusive");
        controller.Sending.Should().Equal(0, 1);
    }

    [Fact]
    public void When_the_only_sending_subflow_fails_the_best_other_takes_over()
    {
        var controller = new AmpController(3);
        Simulate(controller, Shared, TimeSpan.FromSeconds(1.5));
        var sending = controller.Sending.Single();

        var decision = controller.SubflowFailed(sending, "link down");

        decision!.Sending.Should().ContainSingle().Which.Should().NotBe(sending);
        decision.Reason.Should().Contain("link down");
    }

    [Fact]
    public void The_interval_is_two_round_trips_but_at_least_the_minimum()
    {
        var settings = new AmpSettings();
        AmpController.IntervalFor(settings, TimeSpan.FromMilliseconds(10)).Should().Be(TimeSpan.FromMilliseconds(100));
        AmpController.IntervalFor(settings, TimeSpan.FromMilliseconds(80)).Should().Be(TimeSpan.FromMilliseconds(160));
    }

    /// <summary>Runs the controller over <paramref name="network"/>. A parked subflow that has drained times an idle
    /// request every interval: <paramref name="idleRtt"/> (default: the base RTT, a path of its own).</summary>
    private static List<(TimeSpan At, AmpDecision Decision)> Simulate(AmpController controller, Func<bool[], double[]> network,
        TimeSpan until, Func<int, TimeSpan>? rtt = null, TimeSpan start = default, Func<int, TimeSpan>? idleRtt = null)
    {
        rtt ??= _ => QueuedRtt;
        idleRtt ??= _ => BaseRtt;
        var decisions = new List<(TimeSpan, AmpDecision)>();
        var wasSending = new List<bool>();
        for (var now = start + Interval; now <= until; now += Interval)
        {
            var sending = Enumerable.Range(0, controller.Subflows).Select(controller.IsSending).ToArray();
            var rates = network(sending);
            var samples = sending.Select((s, i) =>
            {
                var carrying = s || (i < wasSending.Count && wasSending[i]); // a parked subflow drains for one interval
                return new SubflowSample(i, carrying, Bytes: (long)(rates[i] * Interval.TotalSeconds), Rtt: s ? rtt(i) : BaseRtt,
                    MinRtt: BaseRtt, LossEvents: 0, IdleRtt: carrying ? TimeSpan.Zero : idleRtt(i));
            }).ToArray();
            wasSending = [.. sending];
            if (controller.Update(now, Interval, samples) is { } decision)
            {
                decisions.Add((now, decision));
            }
        }
        return decisions;
    }
}
