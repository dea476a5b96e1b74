using System.Buffers;
using System.Diagnostics;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;
using Serilog;

namespace FileProxy.Protocol.Client.Multipath;

/// <summary>
/// Downloads one file over several TCP connections ("subflows"), one per address of the same server. The head
/// (STAT on every address, which must agree) fixes size, version tag and digest; then ranged GETs with that version
/// as if-version are pulled from a shared queue by whichever subflow is free, pipelined, written at their offsets;
/// the contiguous prefix is hashed while the rest arrives. An <see cref="AmpController"/> decides (in
/// <see cref="MultipathMode.Adaptive"/>) how many subflows carry data. See docs/MULTIPATH.md.
/// </summary>
public sealed class MultipathFetcher : IAsyncDisposable
{
    /// <summary>Subflows are tracked as bits of an int.</summary>
    public const int MaxSubflows = 16;

    private readonly Subflow?[] _subflows;
    private readonly string[] _addresses;
    private readonly IReadOnlyList<(string Host, int Port)> _endpoints;
    private readonly string?[] _failures;
    private readonly MultipathOptions _options;
    private readonly SubflowPool? _pool;
    private readonly ILogger _log;
    private int _best;

    private MultipathFetcher(Subflow?[] subflows, string[] addresses, IReadOnlyList<(string Host, int Port)> endpoints, string?[] failures,
        MultipathOptions options, SubflowPool? pool, ILogger log)
    {
        _subflows = subflows;
        _addresses = addresses;
        _endpoints = endpoints;
        _failures = failures;
        _options = options;
        _pool = pool;
        _log = log;
    }

    /// <summary>Subflows connected and not failed.</summary>
    public int Live => _subflows.Count(s => s is not null);

    /// <summary>Connects one subflow per address, in parallel (or takes an idle one from <paramref name="pool"/>, to
    /// which <see cref="DisposeAsync"/> gives them back). An address that cannot be reached is left out with a
    /// warning; throws <see cref="UpstreamException"/> when none can.</summary>
    public static async Task<MultipathFetcher> ConnectAsync(IReadOnlyList<(string Host, int Port)> addresses, MultipathOptions options,
        ILogger? log, CancellationToken cancellationToken, SubflowPool? pool = null)
    {
        if (addresses.Count is 0 or > MaxSubflows)
        {
            throw new ArgumentException($"between 1 and {MaxSubflows} addresses", nameof(addresses));
        }
        log = (log ?? Log.Logger).ForContext<MultipathFetcher>();
        var count = options.Mode == MultipathMode.Off ? 1 : addresses.Count;
        var connecting = Enumerable.Range(0, count)
            .Select(i => TakeOrConnectAsync(pool, i, addresses[i].Host, addresses[i].Port, options, cancellationToken)).ToArray();
        try
        {
            await Task.WhenAll(connecting);
        }
        catch (Exception) when (connecting.Any(t => t.IsCompletedSuccessfully) && !cancellationToken.IsCancellationRequested)
        {
            // Some paths are up: go on with those (each failure is logged below).
        }
        catch (Exception)
        {
            foreach (var task in connecting.Where(t => t.IsCompletedSuccessfully))
            {
                await task.Result.DisposeAsync();
            }
            cancellationToken.ThrowIfCancellationRequested();
            throw NoPath(connecting.Select(t => t.Exception?.InnerException).OfType<Exception>().ToArray());
        }
        var subflows = new Subflow?[count];
        var failures = new string?[count];
        var names = new string[count];
        for (var i = 0; i < count; i++)
        {
            names[i] = Subflow.Name(addresses[i].Host, addresses[i].Port);
            if (connecting[i].IsCompletedSuccessfully)
            {
                subflows[i] = connecting[i].Result;
            }
            else
            {
                failures[i] = connecting[i].Exception?.InnerException?.Message ?? "connect failed";
                log.Warning("Subflow {Subflow} ({Address}) left out: {Reason}", i, names[i], failures[i]);
            }
        }
        return new MultipathFetcher(subflows, names, addresses, failures, options, pool, log);
    }

    /// <summary>Why no path could be connected: each distinct reason once; the status (a refused token, say) and
    /// whether retrying cannot help when every path says the same.</summary>
    private static UpstreamException NoPath(Exception[] failures)
    {
        var message = string.Join("; ", failures.Select(e => e.Message).Distinct(StringComparer.Ordinal));
        var upstream = failures.OfType<UpstreamException>().ToArray();
        var permanent = failures.Length > 0 && upstream.Length == failures.Length && upstream.All(e => e.Permanent);
        var statuses = upstream.Select(e => e.Status).Distinct().ToArray();
        return upstream.Length == failures.Length && statuses is [{ } status]
            ? new UpstreamException(message, status) { Permanent = permanent }
            : new UpstreamException(message) { Permanent = permanent };
    }

    private static async Task<Subflow> TakeOrConnectAsync(SubflowPool? pool, int index, string host, int port, MultipathOptions options,
        CancellationToken cancellationToken)
    {
        if (pool is not null && await pool.TakeAsync(index, Subflow.Name(host, port)) is { } idle)
        {
            return idle;
        }
        var subflow = await Subflow.ConnectAsync(index, host, port, options, cancellationToken);
        pool?.NoteConnected();
        return subflow;
    }

    /// <summary>STATs the file on every subflow. Error answers (not found…) are returned when every address gives
    /// the same one. Throws <see cref="MultipathException"/> when the addresses disagree (not the same server, or
    /// the file changed between them), <see cref="UpstreamException"/> when no address answers.</summary>
    public async Task<ResponseHead> HeadAsync(string name, CancellationToken cancellationToken)
    {
        var live = _subflows.OfType<Subflow>().ToArray();
        var stopwatch = Stopwatch.StartNew();
        var answers = live.Select(async s =>
        {
            try
            {
                var head = await s.StatAsync(name, cancellationToken);
                return (Subflow: s, Head: head, Elapsed: stopwatch.Elapsed);
            }
            catch (UpstreamException) when (s.Reused && !cancellationToken.IsCancellationRequested)
            {
                // A pooled connection the server closed meanwhile: once more, on a fresh one.
                var (host, port) = _endpoints[s.Index];
                var fresh = await Subflow.ConnectAsync(s.Index, host, port, _options, cancellationToken);
                _pool?.NoteConnected();
                _subflows[s.Index] = fresh;
                await s.DisposeAsync();
                var head = await fresh.StatAsync(name, cancellationToken);
                return (Subflow: fresh, Head: head, Elapsed: stopwatch.Elapsed);
            }
        }).ToArray();
        try
        {
            await Task.WhenAll(answers);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Handled per subflow below.
        }
        cancellationToken.ThrowIfCancellationRequested();
        var answered = new List<(Subflow Subflow, ResponseHead Head, TimeSpan Elapsed)>();
        for (var i = 0; i < live.Length; i++)
        {
            if (answers[i].IsCompletedSuccessfully)
            {
                answered.Add(answers[i].Result);
            }
            else if (_subflows[live[i].Index] is { } failed)
            {
                await DropAsync(failed, answers[i].Exception?.InnerException?.Message ?? "STAT failed");
            }
        }
        if (answered.Count == 0)
        {
            throw new UpstreamException(string.Join("; ", _failures.OfType<string>()));
        }
        var first = answered.MinBy(a => a.Head.IsOk ? a.Elapsed : TimeSpan.MaxValue);
        foreach (var other in answered)
        {
            if (!Agree(first.Head, other.Head))
            {
                throw new MultipathException(
                    $"the addresses do not serve the same file: {first.Subflow.Address} answers {Describe(first.Head)}, {other.Subflow.Address} answers {Describe(other.Head)}; give addresses of one server only");
            }
        }
        _best = first.Subflow.Index;
        return first.Head;
    }

    /// <summary>
    /// Fetches the whole of <paramref name="file"/> (as <see cref="HeadAsync"/> returned it) into
    /// <paramref name="output"/> (opened for reading and writing; bytes go at their offsets, the length is not
    /// changed). <paramref name="written"/> is called in order with the length of the contiguous prefix written so
    /// far. Throws <see cref="FileChangedException"/> when a chunk comes back with another version (start over with
    /// a new head), <see cref="MultipathException"/> when a peer answers with the wrong range or length,
    /// <see cref="UpstreamException"/> when every path failed, IOException when the output cannot be written.
    /// </summary>
    public async Task<MultipathResult> FetchAsync(string name, FileMetadata file, SafeFileHandle output, Action<long>? written,
        CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        var live = _subflows.OfType<Subflow>().ToArray();
        if (live.Length == 0)
        {
            throw new UpstreamException(string.Join("; ", _failures.OfType<string>()));
        }
        if (_subflows[_best] is null)
        {
            _best = live[0].Index;
        }
        var scheduler = new ChunkScheduler(file.Size, _subflows.Length);
        var alone = file.Size < _options.SmallFileBytes || live.Length == 1;
        foreach (var subflow in live)
        {
            scheduler.SetEnabled(subflow.Index, !alone || subflow.Index == _best);
        }
        var transfer = new MultipathTransfer(name, file, output, scheduler, _options, wholeFileChunk: file.Size < _options.SmallFileBytes);
        var controller = !alone && _options.Mode == MultipathMode.Adaptive ? new AmpController(_subflows.Length, _options.Controller) : null;
        for (var i = 0; i < _subflows.Length; i++)
        {
            if (_subflows[i] is null)
            {
                controller?.SubflowFailed(i, _failures[i] ?? "not connected");
            }
        }
        var decisions = new List<AmpDecision>();
        if (!alone)
        {
            _log.Information("Fetching {Name} ({Bytes} bytes) over {Subflows} subflows ({Addresses}), multipath {Mode}",
                name, file.Size, live.Length, string.Join(", ", live.Select(s => $"{s.Index}={s.Address}")), _options.Mode);
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var hashing = Task.Run(() => HashPrefixAsync(scheduler, file.Size, output, written, cancellationToken), CancellationToken.None);
        var running = live.Select(s => RunSubflowAsync(s, transfer, controller, decisions, stopwatch, stop.Token)).ToArray();
        var sampling = alone ? Task.CompletedTask : SampleAsync(live, scheduler, controller, decisions, stopwatch, stop.Token);
        try
        {
            while (!scheduler.Finished)
            {
                await scheduler.Changed.WaitAsync(cancellationToken);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(running);
            await sampling;
            if (scheduler.Prefix < file.Size)
            {
                scheduler.Fail(new OperationCanceledException(cancellationToken)); // stops the hashing; a real failure came first
            }
            try
            {
                await hashing;
            }
            catch (OperationCanceledException)
            {
                // The transfer failed or was cancelled: that is what the caller hears about.
            }
            foreach (var subflow in live.Where(s => _subflows[s.Index] == s && !s.IsReusable))
            {
                await DropAsync(subflow, null);
            }
        }
        if (scheduler.Failure is { } failure)
        {
            throw failure;
        }
        var digest = await hashing;
        var reports = Enumerable.Range(0, _subflows.Length)
            .Select(i => new SubflowReport(i, _addresses[i], live.FirstOrDefault(s => s.Index == i)?.Delivered ?? 0, _failures[i]))
            .ToArray();
        return new MultipathResult(file.Size, digest, stopwatch.Elapsed, reports, decisions) { Source = transfer.Source };
    }

    /// <summary>Closes the subflows, or gives those at a request boundary back to the pool.</summary>
    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _subflows.Length; i++)
        {
            if (_subflows[i] is { } subflow)
            {
                _subflows[i] = null;
                if (_pool is not null)
                {
                    await _pool.ReturnAsync(subflow);
                }
                else
                {
                    await subflow.DisposeAsync();
                }
            }
        }
    }

    private async Task RunSubflowAsync(Subflow subflow, MultipathTransfer transfer, AmpController? controller,
        List<AmpDecision> decisions, Stopwatch stopwatch, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var reason = await subflow.RunAsync(transfer, cancellationToken);
        if (reason is null)
        {
            return;
        }
        _log.Warning("Subflow {Subflow} ({Address}) failed: {Reason}; its chunks go to the others", subflow.Index, subflow.Address, reason);
        await DropAsync(subflow, reason);
        var scheduler = transfer.Scheduler;
        if (controller is not null)
        {
            lock (controller)
            {
                Apply(controller, controller.SubflowFailed(subflow.Index, reason), scheduler, decisions, stopwatch);
            }
        }
        else if (!_subflows.Any(s => s is not null && scheduler.IsEnabled(s.Index)) && _subflows.FirstOrDefault(s => s is not null) is { } next)
        {
            scheduler.SetEnabled(next.Index, true);
        }
        if (_subflows.All(s => s is null))
        {
            scheduler.Fail(new UpstreamException($"every path failed: {string.Join("; ", _failures.OfType<string>())}"));
        }
    }

    /// <summary>Every max(100 ms, 2 RTT): each subflow's goodput and TCP_INFO, to the controller and to chunk sizing.</summary>
    private async Task SampleAsync(Subflow[] live, ChunkScheduler scheduler, AmpController? controller, List<AmpDecision> decisions,
        Stopwatch stopwatch, CancellationToken cancellationToken)
    {
        var settings = _options.Controller;
        var last = stopwatch.Elapsed;
        var largestRtt = TimeSpan.Zero;
        try
        {
            while (true)
            {
                await Task.Delay(AmpController.IntervalFor(settings, largestRtt), cancellationToken);
                var now = stopwatch.Elapsed;
                var interval = now - last;
                last = now;
                var samples = new List<SubflowSample>();
                largestRtt = TimeSpan.Zero;
                foreach (var subflow in live.Where(s => _subflows[s.Index] == s))
                {
                    var sample = subflow.Sample();
                    samples.Add(sample);
                    var rate = sample.Bytes / Math.Max(interval.TotalSeconds, 1e-3);
                    subflow.Rate = sample.Carrying || sample.Bytes > 0 ? (subflow.Rate + rate) / 2 : subflow.Rate;
                    subflow.Rtt = sample.Rtt;
                    if (sample.Carrying && sample.Rtt > largestRtt)
                    {
                        largestRtt = sample.Rtt;
                    }
                    _log.Debug("Subflow {Subflow}: {Bytes} bytes in {IntervalMs} ms, rtt {RttUs} us (min {MinRttUs} us), idle request {IdleRttUs} us, {LossEvents} out-of-order packets, {State}",
                        sample.Index, sample.Bytes, (int)interval.TotalMilliseconds, (long)sample.Rtt.TotalMicroseconds,
                        (long)sample.MinRtt.TotalMicroseconds, (long)sample.IdleRtt.TotalMicroseconds, sample.LossEvents,
                        scheduler.IsEnabled(sample.Index) ? "sending" : "parked");
                }
                if (controller is not null)
                {
                    lock (controller)
                    {
                        Apply(controller, controller.Update(now, interval, samples), scheduler, decisions, stopwatch);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The transfer ended.
        }
    }

    private void Apply(AmpController controller, AmpDecision? decision, ChunkScheduler scheduler, List<AmpDecision> decisions, Stopwatch stopwatch)
    {
        if (decision is null)
        {
            return;
        }
        SetPings(controller);
        for (var i = 0; i < _subflows.Length; i++)
        {
            scheduler.SetEnabled(i, _subflows[i] is not null && controller.IsSending(i));
        }
        decisions.Add(decision);
        _log.Information("Multipath {Action} at {ElapsedMs} ms: {Reason}; sending on subflows {Sending}",
            decision.Action, (long)stopwatch.Elapsed.TotalMilliseconds, decision.Reason, string.Join(",", decision.Sending));
    }

    /// <summary>Parked subflows time idle requests: often while a probe asks whether they share the bottleneck,
    /// about once a second otherwise (which keeps them open); sending ones do not.</summary>
    private void SetPings(AmpController controller)
    {
        var settings = _options.Controller;
        foreach (var subflow in _subflows.OfType<Subflow>())
        {
            subflow.PingInterval = controller.IsSending(subflow.Index) ? TimeSpan.Zero
                : controller.Phase == AmpPhase.Probe ? settings.ProbePingInterval : settings.ParkedPingInterval;
        }
    }

    /// <summary>Hashes the file's contiguous prefix as it grows (reading back what the subflows wrote) and reports
    /// it to <paramref name="written"/>.</summary>
    private static async Task<ContentDigest> HashPrefixAsync(ChunkScheduler scheduler, long size, SafeFileHandle output,
        Action<long>? written, CancellationToken cancellationToken)
    {
        using var hasher = new ContentHasher();
        var buffer = ArrayPool<byte>.Shared.Rent(1024 * 1024);
        try
        {
            long hashed = 0;
            while (hashed < size)
            {
                var changed = scheduler.Changed;
                var prefix = scheduler.Prefix;
                if (prefix > hashed)
                {
                    written?.Invoke(prefix);
                    while (hashed < prefix)
                    {
                        var read = RandomAccess.Read(output, buffer.AsSpan(0, (int)Math.Min(buffer.Length, prefix - hashed)), hashed);
                        if (read <= 0)
                        {
                            throw new IOException($"the output file ends at {hashed} bytes, {prefix} were written");
                        }
                        hasher.Append(buffer.AsSpan(0, read));
                        hashed += read;
                    }
                    continue;
                }
                if (scheduler.Failure is not null)
                {
                    throw new OperationCanceledException();
                }
                await changed.WaitAsync(cancellationToken);
            }
            return hasher.Finish();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task DropAsync(Subflow subflow, string? reason)
    {
        if (_subflows[subflow.Index] == subflow)
        {
            _subflows[subflow.Index] = null;
            _failures[subflow.Index] ??= reason;
            await subflow.DisposeAsync();
        }
    }

    private static bool Agree(ResponseHead a, ResponseHead b) =>
        a.IsOk == b.IsOk && (a.IsOk
            ? a.File!.Size == b.File!.Size && a.File.Version == b.File.Version && a.File.Digest == b.File.Digest
            : a.Status == b.Status);

    private static string Describe(ResponseHead head) =>
        head.IsOk ? $"version {head.File!.Version} ({head.File.Size} bytes)" : $"{head.Status} ({head.Message})";
}
