using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using FileProxy.Protocol.Transport;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Client.Multipath;

/// <summary>
/// One TCP connection of a multipath transfer, to one address of the server. Unlike <see cref="FileClient"/> it
/// pipelines: the next ranged GET is sent before the current body is read (the server answers requests on a
/// connection strictly in order, so this is legal and keeps the path busy across round trips).
/// </summary>
internal sealed class Subflow : IAsyncDisposable
{
    private readonly Link _link;
    private readonly FrameReader _reader;
    private readonly MultipathOptions _options;
    /// <summary>The next request goes out at the latest this many bytes before the current body ends.</summary>
    private const long MinLeadBytes = 256 * 1024;

    private readonly byte[] _requestBuffer = new byte[WireCodec.MaxRequestFrame];
    private long _received;
    private long _sampledReceived;
    private long _delivered;
    private uint _sampledOutOfOrder;
    private int _outstanding;
    private int _pinging;
    private long _idleRttTicks;
    private long _lastPing;
    private long _pingIntervalTicks;
    private int _disposed;

    private Subflow(int index, string address, Link link, MultipathOptions options)
    {
        Index = index;
        Address = address;
        _link = link;
        _options = options;
        _reader = new FrameReader(link, ProtocolLimits.MaxFrameLength);
    }

    public int Index { get; }

    /// <summary>HOST:PORT as given.</summary>
    public string Address { get; }

    /// <summary>Bytes of chunks this subflow's copy was the one written.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Requests sent and not yet answered in full.</summary>
    public bool Carrying => Volatile.Read(ref _outstanding) > 0;

    /// <summary>Goodput (bytes/s) this subflow had in the last sample; sizes its chunks.</summary>
    public double Rate { get; set; }

    /// <summary>The receiver's RTT estimate in the last sample.</summary>
    public TimeSpan Rtt { get; set; }

    /// <summary>False after a transfer was cut short with requests outstanding: the stream position is lost.</summary>
    public bool IsReusable => _disposed == 0 && Volatile.Read(ref _outstanding) == 0 && Volatile.Read(ref _pinging) == 0;

    /// <summary>While this subflow carries nothing, it sends a STATS request this often (zero: never) and times the answer:
    /// what a request takes on an idle connection is the path's queue in the data's direction (see
    /// <see cref="SubflowSample.IdleRtt"/>), and it keeps a parked connection from the server's idle timeout. Set it
    /// before the scheduler's next change (which wakes the subflow).</summary>
    public TimeSpan PingInterval
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _pingIntervalTicks));
        set => Interlocked.Exchange(ref _pingIntervalTicks, value.Ticks);
    }

    /// <summary>Connects as a <see cref="FileClient"/> does (TLS and the token included, when the options ask for
    /// them): a subflow never carries in the clear what the caller asked to protect.</summary>
    public static async Task<Subflow> ConnectAsync(int index, string host, int port, MultipathOptions options,
        CancellationToken cancellationToken)
    {
        var address = Name(host, port);
        Subflow? subflow = null;
        try
        {
            subflow = new Subflow(index, address, await FileClient.OpenLinkAsync(host, port, options.Connection, cancellationToken), options);
            if (options.Connection.Token is { } token)
            {
                var head = await subflow.RequestAsync(new AuthRequest(token), cancellationToken);
                if (!head.IsOk)
                {
                    throw new UpstreamException($"{address} refused the token: {head.Message}", head.Status);
                }
            }
            return subflow;
        }
        catch (Exception e)
        {
            if (subflow is not null)
            {
                await subflow.DisposeAsync();
            }
            if (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            throw FileClient.ConnectFailure(e, address, options.Connection);
        }
    }

    /// <summary>HOST:PORT, with an IPv6 host in brackets.</summary>
    public static string Name(string host, int port) =>
        host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{port}" : $"{host}:{port}";

    /// <summary>For a subflow waiting in a pool: the connection is open and nothing arrived unasked (a server that
    /// closed it while idle makes it readable with nothing to read).</summary>
    public bool IsOpenAndIdle() => IsReusable && _reader.IsQuiet(_link.Socket);

    /// <summary>Starts a new transfer's counts on a pooled subflow (what it learned of its path stays).</summary>
    public void Reset()
    {
        Interlocked.Exchange(ref _received, 0);
        _sampledReceived = 0;
        Interlocked.Exchange(ref _delivered, 0);
        Interlocked.Exchange(ref _idleRttTicks, 0);
        PingInterval = TimeSpan.Zero;
        Reused = true;
    }

    /// <summary>Taken from a pool: a failure of its first request may be a connection the server had closed.</summary>
    public bool Reused { get; private set; }

    /// <summary>One STAT, before the transfer (nothing else outstanding).</summary>
    public Task<ResponseHead> StatAsync(string name, CancellationToken cancellationToken) =>
        RequestAsync(new StatRequest(name), cancellationToken);

    /// <summary>One request and its answer, with nothing else outstanding, within the response timeout.</summary>
    private async Task<ResponseHead> RequestAsync(Request request, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.Connection.ResponseTimeout);
        try
        {
            await SendAsync(request, deadline.Token);
            var frame = await _reader.ReadFrameAsync(null, deadline.Token)
                ?? throw new UpstreamException($"{Address} closed the connection without answering");
            return WireCodec.DecodeResponse(request.Opcode, frame.Header, frame.Payload.Span);
        }
        catch (Exception e) when (Wrap(e, request.Opcode.ToString().ToUpperInvariant(), cancellationToken) is { } wrapped)
        {
            throw wrapped;
        }
    }

    /// <summary>The receiver's view of the path now, and what arrived since the last call.</summary>
    public SubflowSample Sample()
    {
        var received = Interlocked.Read(ref _received);
        var bytes = received - _sampledReceived;
        _sampledReceived = received;
        TimeSpan rtt = TimeSpan.Zero, minRtt = TimeSpan.Zero;
        long lost = 0;
        if (TcpInfo.Read(_link.Socket) is { } info)
        {
            // On this receiving side: rcv_rtt is measured on the data arriving (so it includes the queue in the
            // data's direction); rtt only on our requests; rcv_ooopack counts packets that arrived after a hole.
            rtt = TimeSpan.FromMicroseconds(info.RcvRtt > 0 ? info.RcvRtt : info.Rtt);
            minRtt = TimeSpan.FromMicroseconds(info.MinRtt);
            lost = unchecked(info.RcvOooPack - _sampledOutOfOrder);
            _sampledOutOfOrder = info.RcvOooPack;
        }
        var idle = TimeSpan.FromTicks(Interlocked.Exchange(ref _idleRttTicks, 0));
        return new SubflowSample(Index, Carrying, bytes, rtt, minRtt, lost, idle);
    }

    /// <summary>Takes chunks from the queue and fetches them until the transfer ends. A path failure gives this
    /// subflow's chunks back and returns its reason; a wrong answer from the peer fails the whole transfer.</summary>
    public async Task<string?> RunAsync(MultipathTransfer transfer, CancellationToken cancellationToken)
    {
        var scheduler = transfer.Scheduler;
        var outstanding = new Queue<Chunk>();
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            while (true)
            {
                var changed = scheduler.Changed;
                // One request at least; the rest of the pipeline once the current body is near its end (or at once
                // while this path's rate is unknown), so a parked subflow has little left to drain.
                await TopUpAsync(transfer, outstanding, Rate > 0 ? 1 : _options.PipelineDepth, stall);
                if (outstanding.Count == 0)
                {
                    if (scheduler.Finished)
                    {
                        return null;
                    }
                    stall.CancelAfter(Timeout.InfiniteTimeSpan); // parked or out of work: not a stall
                    await IdleAsync(changed, stall, cancellationToken);
                    continue;
                }
                var chunk = outstanding.Peek();
                var buffer = ArrayPool<byte>.Shared.Rent(chunk.Length);
                try
                {
                    await ReceiveAsync(transfer, chunk, buffer, stall, () => TopUpAsync(transfer, outstanding, _options.PipelineDepth, stall));
                    outstanding.Dequeue();
                    Interlocked.Decrement(ref _outstanding);
                    if (scheduler.TryClaim(Index, chunk))
                    {
                        try
                        {
                            RandomAccess.Write(transfer.Output, buffer.AsSpan(0, chunk.Length), chunk.Offset);
                        }
                        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                        {
                            // The output failing (full disk, ...), not this path: the transfer cannot be completed.
                            scheduler.Fail(e);
                            return null;
                        }
                        Interlocked.Add(ref _delivered, chunk.Length);
                        scheduler.Written(chunk);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (Exception e) when (PathFailure(e, cancellationToken) is { } reason)
        {
            scheduler.GiveBack(Index, outstanding);
            return reason;
        }
        catch (ProtocolException e)
        {
            scheduler.Fail(new MultipathException($"{Address} broke the protocol: {e.Message}", e));
            return null;
        }
        catch (MultipathException e)
        {
            // A wrong answer from the peer: the transfer cannot be completed.
            scheduler.Fail(e);
            return null;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _link.Dispose();
            _reader.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Waits for the scheduler's next change; meanwhile, every <see cref="PingInterval"/>, times one STATS
    /// request. STATS, not STAT: every server and proxy answers it from memory, while a proxy answers a STAT of a
    /// file it is still fetching by asking its origin, whose path is not this one.</summary>
    private async Task IdleAsync(Task changed, CancellationTokenSource stall, CancellationToken cancellationToken)
    {
        var every = PingInterval;
        if (every <= TimeSpan.Zero)
        {
            await changed.WaitAsync(cancellationToken);
            return;
        }
        var due = every - Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastPing));
        if (due > TimeSpan.Zero)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(due);
            try
            {
                await changed.WaitAsync(wait.Token);
                return;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Time for the next ping.
            }
        }
        Interlocked.Exchange(ref _lastPing, Stopwatch.GetTimestamp());
        Volatile.Write(ref _pinging, 1);
        stall.CancelAfter(_options.StallTimeout);
        var started = Stopwatch.GetTimestamp();
        await SendAsync(new StatsRequest(), stall.Token);
        var frame = await _reader.ReadFrameAsync(null, stall.Token)
            ?? throw new EndOfStreamException($"{Address} closed the connection");
        var elapsed = Stopwatch.GetElapsedTime(started);
        // The answer itself does not matter; one that breaks the protocol does.
        WireCodec.DecodeResponse(Opcode.Stats, frame.Header, frame.Payload.Span);
        Volatile.Write(ref _pinging, 0);
        stall.CancelAfter(Timeout.InfiniteTimeSpan);
        // The smallest since the last sample: a busy machine only ever adds to a round trip.
        long seen;
        do
        {
            seen = Interlocked.Read(ref _idleRttTicks);
        }
        while ((seen == 0 || elapsed.Ticks < seen) && Interlocked.CompareExchange(ref _idleRttTicks, elapsed.Ticks, seen) != seen);
    }

    /// <summary>Sends GETs for more chunks until <paramref name="depth"/> are outstanding or the queue has none for us.</summary>
    private async ValueTask TopUpAsync(MultipathTransfer transfer, Queue<Chunk> outstanding, int depth, CancellationTokenSource stall)
    {
        while (outstanding.Count < depth && transfer.Scheduler.TryTake(Index, transfer.ChunkBytesFor(this), out var next))
        {
            stall.CancelAfter(_options.StallTimeout);
            await SendAsync(new GetRequest(transfer.Name, (ulong)next.Offset, (ulong)next.Length, transfer.File.Version), stall.Token);
            outstanding.Enqueue(next);
            Interlocked.Increment(ref _outstanding);
        }
    }

    /// <summary>Receives one chunk's head and body into <paramref name="buffer"/>, calling <paramref name="nearEnd"/>
    /// once when the rest of the body would take about two round trips (so the next request arrives in time).</summary>
    private async Task ReceiveAsync(MultipathTransfer transfer, Chunk chunk, byte[] buffer, CancellationTokenSource stall,
        Func<ValueTask> nearEnd)
    {
        var lead = Rate <= 0 ? long.MaxValue
            : Math.Max(MinLeadBytes, (long)(Rate * ((2 * Rtt.TotalSeconds) + 0.01)));
        var toppedUp = false;
        stall.CancelAfter(_options.StallTimeout);
        var frame = await _reader.ReadFrameAsync(null, stall.Token)
            ?? throw new EndOfStreamException($"{Address} closed the connection");
        var head = WireCodec.DecodeResponse(Opcode.Get, frame.Header, frame.Payload.Span);
        var expected = transfer.File;
        if (!head.IsOk)
        {
            throw head.Status is StatusCode.VersionMismatch or StatusCode.NotFound
                ? new FileChangedException($"the file changed during the transfer: {Address} answered the chunk at {chunk.Offset} with {head.Status}: {head.Message}")
                : new MultipathException($"{Address} answered the chunk at {chunk.Offset} with {head.Status}: {head.Message}");
        }
        if (head.File!.Version != expected.Version || head.File.Size != expected.Size || head.File.Digest != expected.Digest)
        {
            throw new FileChangedException(
                $"the file changed during the transfer: {Address} answered the chunk at {chunk.Offset} with version {head.File.Version} ({head.File.Size} bytes); the transfer began with version {expected.Version} ({expected.Size} bytes)");
        }
        if (head.Offset != chunk.Offset || head.Length != chunk.Length)
        {
            throw new MultipathException(
                $"{Address} answered a request for bytes {chunk.Offset}+{chunk.Length} with bytes {head.Offset}+{head.Length}; refusing to mix its answer into the file");
        }
        transfer.NoteSource(head.Source);
        var filled = 0;
        while (filled < chunk.Length)
        {
            stall.CancelAfter(_options.StallTimeout);
            var read = await _reader.ReadBodyAsync(buffer.AsMemory(filled, chunk.Length - filled), stall.Token);
            if (read == 0)
            {
                throw new EndOfStreamException($"{Address} closed the connection after {filled} of {chunk.Length} body bytes");
            }
            filled += read;
            Interlocked.Add(ref _received, read);
            if (!toppedUp && chunk.Length - filled <= lead)
            {
                toppedUp = true;
                await nearEnd();
            }
        }
    }

    private async ValueTask SendAsync(Request request, CancellationToken cancellationToken)
    {
        var length = WireCodec.EncodeRequest(request, _requestBuffer);
        await _link.SendAsync(_requestBuffer.AsMemory(0, length), cancellationToken);
    }

    /// <summary>The reason when <paramref name="e"/> means this path failed (the transfer can go on without it).</summary>
    private string? PathFailure(Exception e, CancellationToken cancellationToken) => e switch
    {
        OperationCanceledException when !cancellationToken.IsCancellationRequested =>
            $"{Address} sent nothing for {_options.StallTimeout.TotalSeconds} s",
        EndOfStreamException => e.Message.StartsWith(Address, StringComparison.Ordinal) ? e.Message : $"{Address} closed the connection mid-frame",
        SocketException or ObjectDisposedException => $"connection to {Address} failed: {e.Message}",
        // Every IOException here is the connection's (the output's are caught where it is written): a reset, or,
        // over TLS, a close mid-record or a record that does not decrypt.
        IOException => $"connection to {Address} failed: {e.Message}",
        _ => null,
    };

    private UpstreamException? Wrap(Exception e, string what, CancellationToken cancellationToken) => e switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => null,
        OperationCanceledException => new UpstreamException($"{Address} did not answer {what} within {_options.Connection.ResponseTimeout.TotalSeconds} s", e),
        ProtocolException => new UpstreamException($"{Address} broke the protocol: {e.Message}", e),
        EndOfStreamException => new UpstreamException($"{Address} closed the connection mid-frame", e),
        SocketException or IOException or ObjectDisposedException => new UpstreamException($"connection to {Address} failed: {e.Message}", e),
        _ => null,
    };
}
