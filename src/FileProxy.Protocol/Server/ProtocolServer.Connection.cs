using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Net.Sockets;
using FileProxy.Protocol.Transport;
using FileProxy.Protocol.Wire;
using Serilog;
using Serilog.Events;

namespace FileProxy.Protocol.Server;

public sealed partial class ProtocolServer
{
    /// <summary>One client connection: reads requests one after another and answers each in order.</summary>
    private sealed class Connection : IBodySink, IDisposable
    {
        /// <summary>Room for a response head plus a small body sent in the same packet.</summary>
        private const int WriteBufferBytes = 16 * 1024;

        private readonly ProtocolServer _server;
        private readonly Socket _socket;
        private readonly ILogger _log;
        private readonly FrameReader _reader;
        private readonly SocketSender _sender;
        private readonly byte[] _writeBuffer = ArrayPool<byte>.Shared.Rent(WriteBufferBytes);
        private readonly CancellationTokenSource _readCancel;
        private readonly Action _onFirstByte;
        private long _phaseStarted;
        private int _headBytes;
        private long? _acknowledgedAtCut;
        private long _firstByteAt;
        private volatile int _phase;
        private volatile bool _timedOut;
        private bool _authenticated;

        public Connection(ProtocolServer server, Link link, ILogger log)
        {
            _server = server;
            _socket = link.Socket;
            _log = log;
            _reader = new FrameReader(link, WireCodec.MaxRequestFrame - ProtocolLimits.FrameHeaderLength);
            _sender = new SocketSender(link);
            _authenticated = server._options.Token is null;
            _readCancel = CancellationTokenSource.CreateLinkedTokenSource(server._stopping.Token);
            _onFirstByte = () => Enter(HeaderPhase);
        }

        private CancellationToken Abort => _server._aborting.Token;

        public async Task RunAsync()
        {
            _server._live[this] = 0;
            try
            {
                await ServeAsync();
            }
            finally
            {
                _server._live.TryRemove(this, out _);
            }
        }

        private async Task ServeAsync()
        {
            _log.Debug("Connection opened");
            using var abort = Abort.Register(static state => ((Connection)state!).Cut(), this);
            while (!_server._stopping.IsCancellationRequested)
            {
                var frame = await ReadRequestFrameAsync();
                if (frame is null || !await HandleAsync(frame.Value))
                {
                    break;
                }
            }
            _log.Debug("Connection closed");
        }

        /// <summary>The drain timeout passed: closes the socket, noting first how much of it the peer received.</summary>
        private void Cut()
        {
            _acknowledgedAtCut = SocketSetup.BytesAcknowledged(_socket);
            _socket.Dispose();
        }

        public void Dispose()
        {
            _readCancel.Dispose();
            _reader.Dispose();
            _sender.Dispose();
            ArrayPool<byte>.Shared.Return(_writeBuffer);
        }

        // While a body is being sent (SendingPhase), a client that takes none of it (no byte handed to the socket, none
        // acknowledged) for the idle timeout is cut, as nginx's send_timeout does. TCP_USER_TIMEOUT does this only on
        // plain TCP (MPTCP sockets refuse it), and without it such a client kept its connection, its file and (on a
        // pass-through) an upstream slot until the server stopped.
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            MarkFirstByte();
            Enter(SendingPhase);
            await _sender.SendAsync(data, cancellationToken);
            Enter(BusyPhase);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        public async ValueTask SendFileAsync(FileStream file, long offset, long count, CancellationToken cancellationToken)
        {
            MarkFirstByte();
            Enter(SendingPhase);
            await _sender.SendFileAsync(file, offset, count, cancellationToken);
            Enter(BusyPhase);
        }

        /// <summary>Notes when the response's first byte (of the body, when it has one) was handed to the socket.</summary>
        private void MarkFirstByte()
        {
            if (_firstByteAt == 0)
            {
                _firstByteAt = Stopwatch.GetTimestamp();
            }
        }

        /// <summary>One request's duration and time to first byte, by operation, status and cache result.</summary>
        private void RecordMetrics(Opcode opcode, StatusCode status, bool cut, ResponseSource? source, long started)
        {
            var metrics = _server._metrics;
            if (!metrics.Enabled)
            {
                return;
            }
            var now = Stopwatch.GetTimestamp();
            double? firstByte = _firstByteAt == 0 ? null : Stopwatch.GetElapsedTime(started, _firstByteAt).TotalSeconds;
            metrics.RecordRequest(opcode, status, cut, source, Stopwatch.GetElapsedTime(started, now).TotalSeconds, firstByte);
        }

        private const int BusyPhase = 0;
        private const int IdlePhase = 1;
        private const int HeaderPhase = 2;
        private const int SendingPhase = 3;

        // The heartbeat's view of a body's send: bytes handed to the socket plus bytes acknowledged, and when that
        // last changed (the heartbeat's thread only).
        private long _sendProgress = -1;
        private long _sendProgressAt;

        private void Enter(int phase)
        {
            Volatile.Write(ref _phaseStarted, Environment.TickCount64);
            _phase = phase;
        }

        /// <summary>Called by the server's heartbeat: cuts a read, or a body's send, that has waited past its timeout.
        /// No timer is armed per request; one sweep over all connections does it.</summary>
        public void CheckTimeout(long now)
        {
            var phase = _phase;
            var limit = phase switch
            {
                IdlePhase or SendingPhase => _server._options.IdleTimeout,
                HeaderPhase => _server._options.HeaderTimeout,
                _ => Timeout.InfiniteTimeSpan,
            };
            var since = Volatile.Read(ref _phaseStarted);
            if (phase == SendingPhase)
            {
                // One send may be a whole file to a slow client: what counts is that bytes still move.
                var progress = _sender.BytesSent + (SocketSetup.BytesAcknowledged(_socket) ?? 0);
                if (progress != _sendProgress)
                {
                    (_sendProgress, _sendProgressAt) = (progress, now);
                }
                since = Math.Max(since, _sendProgressAt);
            }
            if (limit != Timeout.InfiniteTimeSpan && now - since > limit.TotalMilliseconds && !_timedOut)
            {
                _timedOut = true;
                if (phase == SendingPhase)
                {
                    _log.Warning("The client took none of the response for {IdleTimeoutSeconds} s; closing",
                        _server._options.IdleTimeout.TotalSeconds);
                    Cut();
                    return;
                }
                try
                {
                    _readCancel.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // Closed (and disposed) since the sweep took its list of connections: nothing left to cut.
                }
            }
        }

        /// <summary>Waits for the next request: up to the idle timeout for its first byte, then up to the header
        /// timeout for the rest. Null means close the connection (peer left, timed out, or the server stops).</summary>
        // The per-request async methods reuse their state machines (PoolingAsyncValueTaskMethodBuilder): each
        // suspends once a request (waiting for it, or for the socket), and a new box each time was most of what a
        // 4 KiB hit allocated, so the proxy collected every few thousand hits with 64 requests in flight.
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<Frame?> ReadRequestFrameAsync()
        {
            Enter(IdlePhase);
            try
            {
                var frame = await _reader.ReadFrameAsync(_onFirstByte, _readCancel.Token);
                Enter(BusyPhase);
                return frame;
            }
            catch (OperationCanceledException) when (_server._stopping.IsCancellationRequested && !_timedOut)
            {
                return null;
            }
            catch (OperationCanceledException) when (_phase == HeaderPhase)
            {
                _log.Warning("Request frame not completed within {HeaderTimeoutSeconds} s; closing",
                    _server._options.HeaderTimeout.TotalSeconds);
                await TrySendErrorAsync(Opcode.ErrorResponse, StatusCode.BadRequest, "request frame not completed in time");
                return null;
            }
            catch (OperationCanceledException)
            {
                _log.Debug("Idle for {IdleTimeoutSeconds} s; closing", _server._options.IdleTimeout.TotalSeconds);
                return null;
            }
            catch (ProtocolException e)
            {
                _log.Warning("Malformed request frame: {Reason}; closing", e.Message);
                await TrySendErrorAsync(Opcode.ErrorResponse, e.Status, e.Message);
                return null;
            }
            catch (Exception e) when (IsDisconnect(e))
            {
                _log.Debug("Peer went away while sending a request: {Reason}", e.Message);
                return null;
            }
        }

        /// <summary>Answers one request. Returns false when the connection must close.</summary>
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<bool> HandleAsync(Frame frame)
        {
            var started = Stopwatch.GetTimestamp();
            _firstByteAt = 0;
            Interlocked.Increment(ref _server._counters.Requests);
            Request request;
            try
            {
                request = WireCodec.DecodeRequest(frame.Header.Opcode, frame.Payload.Span);
            }
            catch (ProtocolException e)
            {
                _log.Warning("Bad {Opcode} request: {Reason}", frame.Header.Opcode, e.Message);
                Interlocked.Increment(ref _server._counters.RequestsFailed);
                var answered = await TrySendErrorAsync(frame.Header.Opcode, StatusCode.BadRequest, e.Message);
                RecordMetrics(frame.Header.Opcode, StatusCode.BadRequest, !answered, null, started);
                return answered;
            }

            if (request is AuthRequest auth)
            {
                return await AuthenticateAsync(auth, started);
            }
            if (!_authenticated)
            {
                Interlocked.Increment(ref _server._counters.AuthRefused);
                Interlocked.Increment(ref _server._counters.RequestsFailed);
                _log.Warning("{Opcode} refused: no token presented on a server that requires one; closing", request.Opcode);
                var answered = await TrySendErrorAsync(request.Opcode, StatusCode.Unauthorized, "this server requires a token (client: --token-file)");
                RecordMetrics(request.Opcode, StatusCode.Unauthorized, !answered, null, started);
                return false;
            }

            var name = request switch
            {
                GetRequest get => get.Name,
                StatRequest stat => stat.Name,
                PurgeRequest purge => purge.Name,
                ListRequest { Directory.Length: > 0 } list => list.Directory, // empty: the root
                _ => null,
            };
            SafeName? safeName = null;
            if (name is not null && !SafeName.TryCreate(name, out safeName, out var nameError))
            {
                _log.Warning("{Opcode} {Name} refused: {Reason}", request.Opcode, name, nameError);
                Interlocked.Increment(ref _server._counters.RequestsFailed);
                var answered = await TrySendErrorAsync(request.Opcode, StatusCode.BadRequest, nameError);
                RecordMetrics(request.Opcode, StatusCode.BadRequest, !answered, null, started);
                return answered;
            }

            SourceResult result;
            try
            {
                result = request switch
                {
                    GetRequest get => await _server._source.GetAsync(safeName!, get, Abort),
                    StatRequest stat => await _server._source.StatAsync(safeName!, stat, Abort),
                    PurgeRequest => await _server._source.PurgeAsync(safeName!, Abort),
                    ListRequest list => await _server._source.ListAsync(safeName, list.Cursor,
                        list.Limit is 0 or > ProtocolLimits.MaxListEntries ? ProtocolLimits.MaxListEntries : list.Limit, Abort),
                    _ => new ResponseHead(StatusCode.Ok, _server._source.Role) { Counters = _server.Counters() },
                };
            }
            catch (Exception e) when (!Abort.IsCancellationRequested)
            {
                _log.Error(e, "{Opcode} {Name} failed inside the server", request.Opcode, name);
                Interlocked.Increment(ref _server._counters.RequestsFailed);
                var answered = await TrySendErrorAsync(request.Opcode, StatusCode.InternalError, "internal error; see the server log");
                RecordMetrics(request.Opcode, StatusCode.InternalError, !answered, null, started);
                return answered;
            }

            var (head, body) = result;
            var sentBefore = _sender.BytesSent;
            _headBytes = 0;
            string? cut = null;
            await using (body)
            {
                try
                {
                    cut = Cut(await SendResponseAsync(request.Opcode, head, body), request.Opcode, name);
                }
                catch (BodyUnavailableException)
                {
                    head = ResponseHead.Error(StatusCode.InternalError, "cannot read the file; see the server log");
                    cut = await TrySendErrorAsync(request.Opcode, head.Status, head.Message) ? null : "peer went away";
                    sentBefore = _sender.BytesSent;
                }
                catch (Exception e) when (Abort.IsCancellationRequested)
                {
                    _log.Debug("Response cut by the stop: {Reason}", e.Message);
                    cut = "cut by the drain timeout";
                }
                catch (Exception e) when (IsDisconnect(e))
                {
                    cut = Cut(CopyOutcome.DownstreamFailed(e), request.Opcode, name);
                }
                catch (Exception e)
                {
                    // The head is out and the body cannot be completed: only closing tells the peer.
                    _log.Error(e, "{Opcode} {Name} failed while sending the body; closing", request.Opcode, name);
                    cut = "the body could not be completed (see the error above)";
                }
            }
            // Body bytes that really left, also when the response was cut part way: a failed sendfile may not say
            // how far it got, the peer's acknowledgements do (earlier responses on this connection count as delivered).
            var sent = Math.Max(0, _sender.BytesSent - sentBefore - _headBytes);
            if (cut is not null && (SocketSetup.BytesAcknowledged(_socket) ?? _acknowledgedAtCut) is { } acknowledged)
            {
                sent = Math.Clamp(Math.Max(sent, acknowledged - sentBefore - _headBytes), 0, Math.Max(head.Length, 0));
            }
            Interlocked.Add(ref _server._counters.BytesServed, sent);
            if (!head.IsOk || cut is not null)
            {
                Interlocked.Increment(ref _server._counters.RequestsFailed);
            }
            LogRequest(request, name, head, sent, started, cut);
            RecordMetrics(request.Opcode, head.Status, cut is not null, head.IsOk && request is GetRequest or StatRequest ? head.Source : null, started);
            if (sent > 0 && _server._options.Mptcp)
            {
                Mptcp.LogSubflows(_log, _socket);
            }
            return cut is null;
        }

        /// <summary>Checks a presented token (in constant time). A wrong one closes the connection.</summary>
        private async ValueTask<bool> AuthenticateAsync(AuthRequest auth, long started)
        {
            var expected = _server._options.Token;
            var ok = expected is null || System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                System.Text.Encoding.UTF8.GetBytes(auth.Token), System.Text.Encoding.UTF8.GetBytes(expected));
            if (!ok)
            {
                Interlocked.Increment(ref _server._counters.AuthRefused);
                Interlocked.Increment(ref _server._counters.RequestsFailed);
                _log.Warning("AUTH refused: wrong token; closing");
                var answered = await TrySendErrorAsync(Opcode.Auth, StatusCode.Unauthorized, "wrong token");
                RecordMetrics(Opcode.Auth, StatusCode.Unauthorized, !answered, null, started);
                return false;
            }
            _authenticated = true;
            var head = new ResponseHead(StatusCode.Ok, expected is null ? "no token needed" : "authenticated");
            var length = WireCodec.EncodeResponse(Opcode.Auth, head, _writeBuffer);
            MarkFirstByte();
            try
            {
                await _sender.SendAsync(_writeBuffer.AsMemory(0, length), Abort);
            }
            catch (Exception e) when (IsDisconnect(e))
            {
                // The client left right after asking: its business, not a server error.
                RecordMetrics(Opcode.Auth, StatusCode.Ok, true, null, started);
                return false;
            }
            RecordMetrics(Opcode.Auth, StatusCode.Ok, false, null, started);
            _log.Debug("AUTH Ok in {ElapsedMs:0.###} ms", Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return true;
        }

        /// <summary>
        /// What a copy's outcome means for the response: null when it is whole, else why it was cut. Logged once,
        /// by the side that failed: a peer that left (reset, aborted, shut down or broken pipe) is a Debug line; a
        /// source whose failure was logged where it happened adds nothing; any other failure is one Warning with its
        /// reason, no stack trace (the head is out, so closing is all that is left to tell the peer).
        /// </summary>
        private string? Cut(CopyOutcome outcome, Opcode opcode, string? name)
        {
            switch (outcome.Result)
            {
                case CopyResult.Success:
                    return null;
                case CopyResult.Canceled when Abort.IsCancellationRequested:
                    _log.Debug("Response cut by the stop: {Reason}", outcome.Reason);
                    return "cut by the drain timeout";
                case CopyResult.Canceled:
                    _log.Debug("Response canceled: {Reason}", outcome.Reason);
                    return "canceled";
                case CopyResult.DownstreamWriteFailed when Abort.IsCancellationRequested:
                    _log.Debug("Response cut by the stop: {Reason}", outcome.Reason);
                    return "cut by the drain timeout";
                case CopyResult.DownstreamWriteFailed when Disconnects.IsPeerGone(outcome.Error):
                    _log.Debug("Peer went away during the response: {Reason}", outcome.Reason);
                    return "peer went away";
                case CopyResult.DownstreamWriteFailed:
                    _log.Warning("{Opcode} {Name}: sending the body failed: {Reason}; closing", opcode, name, outcome.Reason);
                    return $"sending failed: {outcome.Reason}";
                default:
                    if (outcome.Error is not BodySourceFailedException)
                    {
                        _log.Warning("{Opcode} {Name}: the body's source failed part way: {Reason}; closing", opcode, name, outcome.Reason);
                    }
                    return $"the source failed: {outcome.Reason}";
            }
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<CopyOutcome> SendResponseAsync(Opcode opcode, ResponseHead head, IResponseBody? body)
        {
            if (head.IsOk && opcode is Opcode.Stats or Opcode.List) // up to a whole frame: more than the write buffer
            {
                var frame = ArrayPool<byte>.Shared.Rent(WireCodec.MaxResponseFrame);
                try
                {
                    var length = WireCodec.EncodeResponse(opcode, head, frame);
                    _headBytes = length;
                    MarkFirstByte();
                    await _sender.SendAsync(frame.AsMemory(0, length), Abort);
                    return CopyOutcome.Success;
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(frame);
                }
            }

            var headLength = WireCodec.EncodeResponse(opcode, head, _writeBuffer);
            _headBytes = headLength;
            if (body is null || body.Length == 0)
            {
                MarkFirstByte();
                await _sender.SendAsync(_writeBuffer.AsMemory(0, headLength), Abort);
                return CopyOutcome.Success;
            }
            bool small;
            try
            {
                small = body.TryCopyTo(_writeBuffer.AsSpan(headLength));
            }
            catch (IOException e)
            {
                // Nothing is sent yet: the peer can still get a proper answer instead of a cut connection.
                _log.Error(e, "Reading the body failed before the response started");
                throw new BodyUnavailableException(e);
            }
            if (small)
            {
                MarkFirstByte();
                await _sender.SendAsync(_writeBuffer.AsMemory(0, headLength + (int)body.Length), Abort);
                return CopyOutcome.Success;
            }
            await _sender.SendAsync(_writeBuffer.AsMemory(0, headLength), Abort);
            return await body.SendAsync(this, Abort);
        }

        /// <summary>
        /// One line per request, at Information: what was asked, the outcome and the body bytes that really left. A
        /// failure's cause is logged once, where it happened (an upstream failure, a bug); a client asking for a
        /// missing file or leaving early is the client's business. A response cut part way says so, with its reason.
        /// </summary>
        private void LogRequest(Request request, string? name, ResponseHead head, long sent, long started, string? cut)
        {
            if (!_log.IsEnabled(LogEventLevel.Information))
            {
                return;
            }
            var elapsedMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var opcode = request.Opcode.ToString().ToUpperInvariant();
            var source = head.IsOk && request is GetRequest or StatRequest ? head.Source.ToString() : "-";
            if (request is ListRequest list)
            {
                name = list.Directory.Length == 0 ? "." : list.Directory;
                if (head.Listing is { } page)
                {
                    head = head with
                    {
                        Message = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                            $"{page.Entries.Count} {(page.Entries.Count == 1 ? "entry" : "entries")}{(list.Cursor.Length > 0 ? " after a cursor" : "")}{(page.More ? ", more to come" : "")}"),
                    };
                }
            }
            if (cut is not null)
            {
                _log.Information("{Opcode} {Name} Cut after {Bytes} of {Length} bytes in {ElapsedMs:0.###} ms {Source}: {Reason}",
                    opcode, name ?? "-", sent, head.Length, elapsedMs, source, cut);
            }
            else if (head.Message.Length == 0)
            {
                _log.Information("{Opcode} {Name} {Status} {Bytes} bytes in {ElapsedMs:0.###} ms {Source}",
                    opcode, name ?? "-", head.Status, sent, elapsedMs, source);
            }
            else
            {
                _log.Information("{Opcode} {Name} {Status} {Bytes} bytes in {ElapsedMs:0.###} ms {Source} {Message}",
                    opcode, name ?? "-", head.Status, sent, elapsedMs, source, head.Message);
            }
        }

        /// <summary>Sends an error response; returns whether the connection can go on.</summary>
        private async ValueTask<bool> TrySendErrorAsync(Opcode opcode, StatusCode status, string message)
        {
            try
            {
                var length = WireCodec.EncodeResponse(opcode, ResponseHead.Error(status, message), _writeBuffer);
                MarkFirstByte();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Abort);
                timeout.CancelAfter(_server._options.HeaderTimeout);
                await _sender.SendAsync(_writeBuffer.AsMemory(0, length), timeout.Token);
                return true;
            }
            catch (Exception e) when (IsDisconnect(e))
            {
                return false;
            }
        }

        private static bool IsDisconnect(Exception e) =>
            e is SocketException or ObjectDisposedException or EndOfStreamException or OperationCanceledException
            || (e is IOException { InnerException: SocketException });
    }
}

/// <summary>A body failed before any of its response was sent, so an error answer is still possible.</summary>
internal sealed class BodyUnavailableException(Exception inner) : IOException(inner.Message, inner);
