using System.Globalization;

namespace FileProxy.Protocol.Client.Multipath;

/// <summary>One subflow's figures over one sampling interval, as the receiver sees them.</summary>
/// <param name="Index">Subflow number (0 is the first address given).</param>
/// <param name="Carrying">Requests are outstanding on it (a parked subflow drains what it had asked for).</param>
/// <param name="Bytes">Body bytes received in the interval.</param>
/// <param name="Rtt">The receiver's RTT estimate now (TCP_INFO rcv_rtt; rtt where the kernel has none).</param>
/// <param name="MinRtt">The kernel's smallest RTT seen on the connection (tcpi_min_rtt), or zero.</param>
/// <param name="LossEvents">Packets that arrived after a hole in the interval (TCP_INFO rcv_ooopack delta).</param>
/// <param name="IdleRtt">The shortest round trip of a STATS request sent in the interval while the subflow carried nothing,
/// or zero. The answer crosses the path in the data's direction behind whatever is queued there: on an idle path
/// of its own it comes back at once, on a path that shares a loaded bottleneck it waits in that queue.</param>
public readonly record struct SubflowSample(int Index, bool Carrying, long Bytes, TimeSpan Rtt, TimeSpan MinRtt, long LossEvents,
    TimeSpan IdleRtt = default);

/// <summary>What the controller decided and why; the subflows that send from now on.</summary>
public sealed record AmpDecision(string Action, IReadOnlyList<int> Sending, string Reason);

/// <summary>The controller's phase.</summary>
public enum AmpPhase
{
    /// <summary>Every enabled subflow sends.</summary>
    Multi,

    /// <summary>Every subflow congested: the best one sends alone for a while to measure what the others add.</summary>
    Probe,

    /// <summary>Collapsed: one subflow sends, the others stay open but idle.</summary>
    Collapsed,

    /// <summary>A parked subflow sends again on trial.</summary>
    Trial,
}

/// <summary>
/// Decides which subflows of one multipath transfer carry data, after AMP (Kheirkhah and Lee, IFIP Networking 2019):
/// when extra subflows only add congestion, collapse to the best single subflow; come back to multipath on trial.
/// A pure state machine over <see cref="SubflowSample"/>s (no clock, no sockets), fed once per sampling interval.
/// <list type="bullet">
/// <item>Multi: once every sending subflow is congested (its RTT rose above its base, or packets arrived after a
/// hole) for <see cref="AmpSettings.CongestedIntervals"/> intervals, the best subflow sends alone (Probe).</item>
/// <item>Probe: when the others have drained, measure the best one's goodput alone. If the others added under
/// <see cref="AmpSettings.Gain"/>, collapse (Single); otherwise all send again and the next check waits a back-off.</item>
/// <item>Single (or Multi with a parked subflow): after the back-off and a run of clean intervals, one parked subflow
/// sends on trial; it stays if the goodput rose by <see cref="AmpSettings.Gain"/> or more, else it is parked again and
/// the back-off doubles (1 s up to 30 s).</item>
/// </list>
/// </summary>
public sealed class AmpController
{
    private readonly AmpSettings _settings;
    private readonly bool[] _sending;
    private readonly bool[] _alive;
    private readonly TimeSpan[] _baseRtt;
    private readonly double[] _lastRate;
    private readonly double[] _averageRate;
    private readonly bool?[] _shares;
    private readonly TimeSpan[] _sharesAt;
    private readonly string?[] _sharesWhy;
    private readonly List<(TimeSpan At, TimeSpan Rtt, bool Queued)>[] _idleAnswers;
    private readonly List<double> _window = [];
    private AmpPhase _phase = AmpPhase.Multi;
    private AmpPhase _beforeTrial;
    private int _intervalsInPhase;
    private int _drainIntervals;
    private double _seconds;
    private int _congestedRun;
    private int _cleanRun;
    private int _best;
    private int _trial = -1;
    private int _nextTrialCandidate;
    private double _before;
    private double _bestBefore;
    private double _peakMulti;
    private TimeSpan _probeStarted;
    private bool _checked;
    private bool _clear;
    private double _clearAlone;
    private TimeSpan _probeBackoff;
    private TimeSpan _nextProbeAt;
    private TimeSpan _trialBackoff;
    private TimeSpan _nextTrialAt;

    public AmpController(int subflows, AmpSettings? settings = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(subflows, 1);
        _settings = settings ?? new AmpSettings();
        _sending = Enumerable.Repeat(true, subflows).ToArray();
        _alive = Enumerable.Repeat(true, subflows).ToArray();
        _baseRtt = Enumerable.Repeat(TimeSpan.MaxValue, subflows).ToArray();
        _lastRate = new double[subflows];
        _averageRate = new double[subflows];
        _shares = new bool?[subflows];
        _sharesAt = new TimeSpan[subflows];
        _sharesWhy = new string?[subflows];
        _idleAnswers = [.. Enumerable.Range(0, subflows).Select(_ => new List<(TimeSpan, TimeSpan, bool)>())];
        _probeBackoff = _settings.MinBackoff;
        _trialBackoff = _settings.MinBackoff;
    }

    public AmpPhase Phase => _phase;

    /// <summary>Number of subflows, live or failed.</summary>
    public int Subflows => _sending.Length;

    /// <summary>Whether subflow <paramref name="index"/> should take new chunks.</summary>
    public bool IsSending(int index) => _sending[index];

    /// <summary>The subflows that send now.</summary>
    public IReadOnlyList<int> Sending => [.. Enumerable.Range(0, _sending.Length).Where(i => _sending[i])];

    /// <summary>The sampling interval for the RTTs seen last: max(<see cref="AmpSettings.MinInterval"/>, 2 RTT).</summary>
    public static TimeSpan IntervalFor(AmpSettings settings, TimeSpan largestRtt) =>
        largestRtt * 2 > settings.MinInterval ? largestRtt * 2 : settings.MinInterval;

    /// <summary>Feeds one interval's samples (one per live subflow) taken <paramref name="now"/> after the transfer
    /// began; returns the decision taken, if any.</summary>
    public AmpDecision? Update(TimeSpan now, TimeSpan interval, IReadOnlyList<SubflowSample> samples)
    {
        var seconds = Math.Max(interval.TotalSeconds, 1e-3);
        _seconds = seconds;
        var congested = true;
        var anySending = false;
        var lost = false;
        double total = 0;
        foreach (var sample in samples)
        {
            var i = sample.Index;
            if (!_alive[i])
            {
                continue;
            }
            var rate = sample.Bytes / seconds;
            _lastRate[i] = rate;
            _averageRate[i] = (_averageRate[i] + rate) / 2;
            total += rate;
            if (sample.MinRtt > TimeSpan.Zero && sample.MinRtt < _baseRtt[i])
            {
                _baseRtt[i] = sample.MinRtt;
            }
            if (sample.Rtt > TimeSpan.Zero && sample.Rtt < _baseRtt[i])
            {
                _baseRtt[i] = sample.Rtt;
            }
            if (_sending[i])
            {
                anySending = true;
                congested &= IsCongested(sample);
                lost |= sample.LossEvents > 0;
            }
        }
        congested &= anySending;
        JudgeIdleRtts(now, samples);
        _congestedRun = congested ? _congestedRun + 1 : 0;
        _cleanRun = lost ? 0 : _cleanRun + 1;
        _intervalsInPhase++;
        return _phase switch
        {
            AmpPhase.Multi => InMulti(now, total),
            AmpPhase.Probe => InProbe(now, samples),
            AmpPhase.Collapsed => InSingle(now, total),
            _ => InTrial(now, total),
        };
    }

    /// <summary>A subflow failed for good (its path died): it sends no more. If no subflow is left sending, the best
    /// live one takes over.</summary>
    public AmpDecision? SubflowFailed(int index, string why)
    {
        if (!_alive[index])
        {
            return null;
        }
        _alive[index] = false;
        var wasSending = _sending[index];
        _sending[index] = false;
        if (_phase is AmpPhase.Probe or AmpPhase.Trial)
        {
            // The measurement is void; the trial subflow (if still alive) stays sending only if it is the last one.
            if (_phase == AmpPhase.Trial && _trial != index && _trial >= 0)
            {
                _sending[_trial] = false;
            }
            _phase = AmpPhase.Multi;
        }
        if (!_sending.Any(s => s))
        {
            var next = BestAlive(exclude: -1);
            if (next < 0)
            {
                return new AmpDecision("no subflow left", [], $"subflow {index} failed: {why}");
            }
            _sending[next] = true;
            _best = next;
        }
        var count = _sending.Count(s => s);
        Enter(count > 1 ? AmpPhase.Multi : AmpPhase.Collapsed);
        if (_phase == AmpPhase.Collapsed)
        {
            _nextTrialAt = TimeSpan.Zero;
        }
        return new AmpDecision(wasSending ? "subflow lost" : "parked subflow lost", Sending, $"subflow {index} failed: {why}");
    }

    private bool IsCongested(SubflowSample sample)
    {
        if (sample.LossEvents > 0)
        {
            return true;
        }
        var baseRtt = _baseRtt[sample.Index];
        return baseRtt != TimeSpan.MaxValue && sample.Rtt > baseRtt * _settings.RttRiseFactor
            && sample.Rtt > baseRtt + _settings.RttRiseFloor;
    }

    private AmpDecision? InMulti(TimeSpan now, double total)
    {
        if (!Measuring(total))
        {
            return null;
        }
        var current = _window.Average();
        _peakMulti = Math.Max(_peakMulti, current);
        var sendingCount = _sending.Count(s => s);
        if (sendingCount >= 2 && _congestedRun >= _settings.CongestedIntervals && now >= _nextProbeAt
            && (!_checked || current < (1 - _settings.Drop) * _peakMulti))
        {
            _before = current;
            _best = BestSending();
            _bestBefore = _averageRate[_best];
            _probeStarted = now;
            var reason = _checked
                ? Text($"goodput fell to {Rate(current)} from {Rate(_peakMulti)} with every subflow congested for {_congestedRun} intervals; subflow {_best} alone, to measure what the others add")
                : Text($"every subflow congested for {_congestedRun} intervals (RTT above its base or packets lost) at {Rate(current)}; subflow {_best} alone, to measure what the others add");
            for (var i = 0; i < _sending.Length; i++)
            {
                _sending[i] = i == _best;
            }
            Enter(AmpPhase.Probe);
            return new AmpDecision("probe", Sending, reason);
        }
        return TryTrial(now, current);
    }

    private AmpDecision? InProbe(TimeSpan now, IReadOnlyList<SubflowSample> samples)
    {
        if (samples.Any(s => s.Index != _best && s.Carrying) && ++_drainIntervals <= _settings.DrainIntervals)
        {
            _intervalsInPhase = 0; // the others are still receiving what they had asked for
            return null;
        }
        // The best subflow's own goodput: a slow subflow that is still draining does not count. One interval of ramp:
        // on a shared bottleneck the best subflow needs a moment to take the capacity the others leave. But when
        // the others already carried half as much again as it does alone in that first interval, the answer is
        // clear (disjoint paths: about twice): stop the probe early, it costs their share.
        // Only if the best subflow did not speed up when the others stopped: on a shared bottleneck it grows into
        // the capacity they leave (seen: from 5.9 to 7.5 MiB/s in that first interval), on disjoint paths it stays.
        var own = samples.Where(s => s.Index == _best).Sum(s => s.Bytes) / _seconds;
        if (_intervalsInPhase == 1)
        {
            _clear = own > 0 && _before / own - 1 >= _settings.ClearGain && own <= _bestBefore * (1 + _settings.Gain);
            _clearAlone = own;
        }
        var measured = Measuring(own, _settings.RampIntervals, _settings.ProbeIntervals);
        // Whether the others' paths share the best one's bottleneck: their idle round trips (measured since the
        // probe began) say it directly. What the others add to our own goodput cannot: against a competing flow
        // they add a share taken from it (about a third more), which is no reason to keep them.
        var shared = Enumerable.Range(0, _sending.Length)
            .Where(i => _alive[i] && !_sending[i] && _shares[i] == true && _sharesAt[i] > _probeStarted).ToList();
        if (shared.Count > 0)
        {
            return Collapse(now, Text($"subflow {string.Join(",", shared)} shares the bottleneck of subflow {_best}: {_sharesWhy[shared[0]]}"));
        }
        var unknown = Enumerable.Range(0, _sending.Length)
            .Any(i => _alive[i] && !_sending[i] && (_shares[i] is null || _sharesAt[i] <= _probeStarted));
        if (unknown && _intervalsInPhase <= _settings.RampIntervals + _settings.ProbeIntervals)
        {
            return null; // their idle round trips are on the way; without them, the goodput alone decides
        }
        var clear = _clear;
        if (!clear && !measured)
        {
            return null;
        }
        var alone = clear ? _clearAlone : _window.Average();
        _clear = false;
        var gain = alone > 0 ? (_before / alone) - 1 : double.PositiveInfinity;
        if (gain <= -_settings.Gain)
        {
            // One subflow alone beat all of them: what the server could send changed meanwhile (a proxy still
            // filling, a path speeding up). Nothing learned; check again soon.
            for (var i = 0; i < _sending.Length; i++)
            {
                _sending[i] = _alive[i];
            }
            _nextProbeAt = now; // a fresh measurement with all of them (ramp and 3 intervals) is the wait
            Enter(AmpPhase.Multi);
            return new AmpDecision("keep multipath", Sending,
                Text($"inconclusive: subflow {_best} alone ({Rate(alone)}) beat all of them before ({Rate(_before)}), so the supply changed; checking again after a fresh measurement"));
        }
        // A clear gain settles the question until the goodput falls; a narrow one is checked again after the back-off.
        _checked = gain >= 2 * _settings.Gain;
        if (gain >= _settings.Gain)
        {
            for (var i = 0; i < _sending.Length; i++)
            {
                _sending[i] = _alive[i];
            }
            _nextProbeAt = now + _probeBackoff;
            var separate = Enumerable.Range(0, _sending.Length).FirstOrDefault(i => i != _best && _shares[i] == false && _sharesAt[i] > _probeStarted, -1);
            var path = separate >= 0 ? Text($" on paths of their own ({_sharesWhy[separate]})") : "";
            var reason = Text($"the other subflows add {Percent(gain)}{path} ({Rate(_before)} with them, {Rate(alone)} alone); next check in {_probeBackoff.TotalSeconds:0.#} s at the earliest");
            _probeBackoff = Double(_probeBackoff);
            _peakMulti = _before;
            Enter(AmpPhase.Multi);
            return new AmpDecision("keep multipath", Sending, reason);
        }
        return Collapse(now, Text($"the other subflows add only {Percent(gain)} ({Rate(_before)} with them, {Rate(alone)} alone) while every RTT rose"));
    }

    private AmpDecision Collapse(TimeSpan now, string why)
    {
        _clear = false;
        _trialBackoff = _settings.MinBackoff;
        _nextTrialAt = now + _trialBackoff;
        Enter(AmpPhase.Collapsed);
        return new AmpDecision("collapse", Sending,
            Text($"{why}: subflow {_best} sends alone, the others stay open and idle; trial in {_trialBackoff.TotalSeconds:0.#} s"));
    }

    /// <summary>
    /// For each parked subflow that timed an idle request in this interval: does its path share the sending
    /// subflows' bottleneck? Its queue (the idle round trip above its base) must be at least
    /// <see cref="AmpSettings.SharedQueue"/> of the queue the busiest sending subflow sees (its RTT above its base).
    /// Only while that one is congested: without a queue there, an idle request says nothing (no verdict). On a path
    /// of its own, idle, the request comes back at about the base RTT.
    /// </summary>
    private void JudgeIdleRtts(TimeSpan now, IReadOnlyList<SubflowSample> samples)
    {
        SubflowSample? sender = null;
        foreach (var sample in samples)
        {
            if (_alive[sample.Index] && _sending[sample.Index] && (sender is null || sample.Bytes > sender.Value.Bytes))
            {
                sender = sample;
            }
        }
        foreach (var sample in samples)
        {
            var i = sample.Index;
            if (!_alive[i] || _sending[i] || sample.IdleRtt <= TimeSpan.Zero || sender is not { } busy || !IsCongested(busy))
            {
                continue; // without a queue at the sender there is nothing to compare with: no verdict
            }
            // Neither answer alone is believed: a busy machine delays one on an idle path of its own (36 ms seen at a
            // load of 30), and a shared queue drains for a moment now and then (1.4 ms seen beside an RTT of 11 ms).
            // Two answers in a row that agree decide; when they disagree, the third decides (the median of three).
            // Answers count since the probe began, or from the last few keep-alives.
            var window = _phase == AmpPhase.Probe ? _probeStarted : now - (_settings.ParkedPingInterval * 3.5);
            var answers = _idleAnswers[i];
            answers.RemoveAll(a => a.At <= window);
            var baseRtt = _baseRtt[i] == TimeSpan.MaxValue ? TimeSpan.Zero : _baseRtt[i];
            var busyBase = _baseRtt[busy.Index] == TimeSpan.MaxValue ? busy.Rtt : _baseRtt[busy.Index];
            var busyQueue = busy.Rtt - busyBase;
            var queued = sample.IdleRtt - baseRtt >= _settings.RttRiseFloor && sample.IdleRtt - baseRtt >= busyQueue * _settings.SharedQueue;
            answers.Add((now, sample.IdleRtt, queued));
            if (answers.Count > 3)
            {
                answers.RemoveAt(0);
            }
            var last = answers[^1];
            bool? verdict = answers.Count >= 2 && answers[^2].Queued == last.Queued ? last.Queued
                : answers.Count >= 3 ? answers.Count(a => a.Queued) >= 2
                : null;
            if (verdict is not { } shares)
            {
                continue;
            }
            _shares[i] = shares;
            _sharesAt[i] = now;
            var times = string.Join(", ", answers.Select(a => Ms(a.Rtt)));
            _sharesWhy[i] = Text($"idle requests on subflow {i} took {times} (base {Ms(baseRtt)}) while subflow {busy.Index}'s RTT is {Ms(busy.Rtt)} (base {Ms(busyBase)})");
        }
    }

    private AmpDecision? InSingle(TimeSpan now, double total) =>
        Measuring(total) ? TryTrial(now, _window.Average()) : null;

    private AmpDecision? TryTrial(TimeSpan now, double current)
    {
        if (now < _nextTrialAt || (_cleanRun < _settings.CleanIntervals && now < _nextTrialAt + _trialBackoff))
        {
            return null;
        }
        var candidate = NextParked();
        if (candidate < 0)
        {
            return null;
        }
        if (_shares[candidate] == true && now - _sharesAt[candidate] <= _settings.ParkedPingInterval * 2)
        {
            // Its own idle requests show it still shares the sending subflow's bottleneck: a trial could only take a
            // share from whoever else is on it (our goodput would rise, nobody's would in total).
            var backoff = _trialBackoff;
            _trialBackoff = Double(_trialBackoff);
            _nextTrialAt = now + _trialBackoff;
            return new AmpDecision("skip trial", Sending,
                Text($"subflow {candidate} still shares the bottleneck: {_sharesWhy[candidate]}; back-off {backoff.TotalSeconds:0.#} s -> {_trialBackoff.TotalSeconds:0.#} s"));
        }
        _before = current;
        _trial = candidate;
        _beforeTrial = _phase;
        _sending[candidate] = true;
        var clean = _cleanRun;
        Enter(AmpPhase.Trial);
        return new AmpDecision("trial", Sending,
            Text($"{clean} clean intervals and the {_trialBackoff.TotalSeconds:0.#} s back-off passed at {Rate(current)}: subflow {candidate} sends again on trial"));
    }

    private AmpDecision? InTrial(TimeSpan now, double total)
    {
        // A subflow back from idle restarts in slow start: give it one more interval than usual.
        if (_intervalsInPhase <= _settings.RampIntervals + 1 || !Measuring(total))
        {
            return null;
        }
        var with = _window.Average();
        var gain = _before > 0 ? (with / _before) - 1 : double.PositiveInfinity;
        var trial = _trial;
        _trial = -1;
        if (gain >= _settings.Gain)
        {
            _trialBackoff = _settings.MinBackoff;
            _nextTrialAt = now + _trialBackoff;
            _nextProbeAt = now + _probeBackoff;
            _peakMulti = with;
            _checked = true;
            Enter(AmpPhase.Multi);
            return new AmpDecision("keep trial", Sending,
                Text($"subflow {trial} raised the goodput by {Percent(gain)} ({Rate(_before)} before, {Rate(with)} with it)"));
        }
        _sending[trial] = false;
        var backoff = _trialBackoff;
        _trialBackoff = Double(_trialBackoff);
        _nextTrialAt = now + _trialBackoff;
        Enter(_sending.Count(s => s) > 1 ? AmpPhase.Multi : AmpPhase.Collapsed);
        return new AmpDecision("back off", Sending,
            Text($"subflow {trial} added only {Percent(gain)} ({Rate(_before)} before, {Rate(with)} with it): parked again; back-off {backoff.TotalSeconds:0.#} s -> {_trialBackoff.TotalSeconds:0.#} s"));
    }

    /// <summary>Skips the ramp intervals of a phase, then keeps the last few totals; true once there are enough.</summary>
    private bool Measuring(double total) => Measuring(total, _settings.RampIntervals, _settings.MeasureIntervals);

    private bool Measuring(double total, int ramp, int count)
    {
        if (_intervalsInPhase <= ramp)
        {
            return false;
        }
        _window.Add(total);
        if (_window.Count > count)
        {
            _window.RemoveAt(0);
        }
        return _window.Count >= count;
    }

    private void Enter(AmpPhase phase)
    {
        _phase = phase;
        _intervalsInPhase = 0;
        _drainIntervals = 0;
        _congestedRun = 0;
        _window.Clear();
    }

    private int BestSending()
    {
        var best = -1;
        for (var i = 0; i < _sending.Length; i++)
        {
            if (_sending[i] && (best < 0 || _lastRate[i] > _lastRate[best]))
            {
                best = i;
            }
        }
        return best;
    }

    private int BestAlive(int exclude)
    {
        var best = -1;
        for (var i = 0; i < _alive.Length; i++)
        {
            if (_alive[i] && i != exclude && (best < 0 || _lastRate[i] > _lastRate[best]))
            {
                best = i;
            }
        }
        return best;
    }

    /// <summary>Parked live subflows take turns on trial.</summary>
    private int NextParked()
    {
        for (var step = 0; step < _sending.Length; step++)
        {
            var i = (_nextTrialCandidate + step) % _sending.Length;
            if (_alive[i] && !_sending[i])
            {
                _nextTrialCandidate = i + 1;
                return i;
            }
        }
        return -1;
    }

    private TimeSpan Double(TimeSpan backoff) => backoff * 2 < _settings.MaxBackoff ? backoff * 2 : _settings.MaxBackoff;

    private static string Rate(double bytesPerSecond) => Units.FormatBytes(bytesPerSecond) + "/s";

    private static string Percent(double fraction)
    {
        if (double.IsInfinity(fraction))
        {
            return "everything";
        }
        var percent = (int)Math.Round(fraction * 100);
        return string.Create(CultureInfo.InvariantCulture, $"{(percent >= 0 ? "+" : "")}{percent} %");
    }

    private static string Ms(TimeSpan time) => Text($"{time.TotalMilliseconds:0.0} ms");

    private static string Text(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
