using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Net.Sockets;
using FileProxy.Protocol.Metrics;
using FileProxy.Protocol.Transport;
using FileProxy.Protocol.Wire;
using Serilog;

namespace FileProxy.Protocol.Server;

/// <summary>
/// Accepts connections and answers GET, STAT, STATS and PURGE from an <see cref="IFileSource"/>. The origin
/// server and the proxy are both this class; only the source differs.
/// </summary>
public sealed partial class ProtocolServer : IAsyncDisposable
{
    /// <summary>How long connections that were cut at the drain timeout get to unwind before the server stops
    /// without them.</summary>
    private static readonly TimeSpan CutGrace = TimeSpan.FromSeconds(2);

    private readonly IFileSource _source;
    private readonly ProtocolServerOptions _options;
    private readonly ILogger _log;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _aborting = new();
    private readonly Dictionary<long, Task> _connections = [];
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private readonly LogThrottle _busyLog = new(TimeSpan.FromSeconds(5));
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Connection, byte> _live = new();
    private readonly Timer _heartbeat;
    private readonly Lock _connectionsLock = new();
    private readonly ServerCounters _counters = new();
    private readonly ServerMetrics _metrics;
    private readonly MetricsEndpoint? _metricsEndpoint;
    private Task? _acceptLoop;
    private readonly Lazy<Task> _stopped;
    private readonly int _connectionLimit;
    private long _nextConnectionId;
    private int _disposed;

    public ProtocolServer(IFileSource source, ProtocolServerOptions options, ILogger? log = null)
    {
        _source = source;
        _options = options;
        _log = (log ?? Log.Logger).ForContext<ProtocolServer>();
        _stopped = new Lazy<Task>(StopOnceAsync);
        _listener = options.ListenSocket ?? SocketSetup.Listen(options.EndPoint, options.Mptcp);
        _metrics = new ServerMetrics(Counters);
        try
        {
            _metricsEndpoint = options.MetricsEndPoint is { } metricsAt ? new MetricsEndpoint(metricsAt, _metrics.Meter, _log) : null;
        }
        catch
        {
            _metrics.Dispose();
            _listener.Dispose();
            throw;
        }
        _connectionLimit = ConnectionLimit(options.MaxConnections, Native.Posix.GetFileLimit(), Native.Posix.OpenDescriptorCount() ?? 0);
        LocalEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        var beat = TimeSpan.FromMilliseconds(Math.Clamp(
            Math.Min(options.HeaderTimeout.TotalMilliseconds, options.IdleTimeout.TotalMilliseconds) / 4, 10, 1000));
        _heartbeat = new Timer(static state => ((ProtocolServer)state!).Heartbeat(), this, beat, beat);
    }

    /// <summary>Enforces the idle and header timeouts of every connection. On a timer's thread, where an exception
    /// would end the process: one connection's failure is logged and the sweep goes on.</summary>
    private void Heartbeat()
    {
        var now = Environment.TickCount64;
        foreach (var connection in _live.Keys)
        {
            try
            {
                connection.CheckTimeout(now);
            }
            catch (Exception e)
            {
                _log.Error(e, "Checking a connection's timeout failed");
            }
        }
    }

    /// <summary>The bound address; the port is the real one when the options asked for port 0.</summary>
    public IPEndPoint LocalEndPoint { get; }

    public IFileSource Source => _source;

    /// <summary>Where metrics are served (the real port when port 0 was asked for); null without
    /// <see cref="ProtocolServerOptions.MetricsEndPoint"/>.</summary>
    public IPEndPoint? MetricsEndPoint => _metricsEndpoint?.LocalEndPoint;

    /// <summary>Starts accepting connections.</summary>
    public void Start()
    {
        if (_acceptLoop is not null)
        {
            return;
        }
        if (_connectionLimit < _options.MaxConnections)
        {
            _log.Warning("The open file limit ({Limit}) leaves room for {Connections} connections, fewer than --max-connections "
                + "({MaxConnections}): more are answered Busy. Raise the limit (ulimit -n, LimitNOFILE=) to serve more",
                Native.Posix.GetFileLimit()?.Soft, _connectionLimit, _options.MaxConnections);
        }
        _acceptLoop = AcceptLoopAsync();
        _metricsEndpoint?.Start();
    }

    /// <summary>Stops accepting, lets running transfers finish for up to the drain timeout, then cuts the rest.</summary>
    public Task StopAsync() => _stopped.Value;

    private async Task StopOnceAsync()
    {
        _log.Information("Stopping: no new connections; draining running transfers for up to {DrainSeconds} s",
            _options.DrainTimeout.TotalSeconds);
        await _stopping.CancelAsync();
        _listener.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }
        var drained = WaitForConnectionsAsync();
        if (await Task.WhenAny(drained, Task.Delay(_options.DrainTimeout)) != drained)
        {
            _log.Warning("Drain timeout passed; cutting {Connections} connections", ActiveConnections);
            await _aborting.CancelAsync();
            // A connection stuck where cancellation cannot reach (a blocking system call) must not keep the process
            // alive: the drain timeout is a hard bound, give or take this grace for the cut ones to unwind.
            if (await Task.WhenAny(drained, Task.Delay(CutGrace)) != drained)
            {
                _log.Error("{Connections} connections did not stop within {GraceMs} ms of being cut; stopping without them",
                    ActiveConnections, CutGrace.TotalMilliseconds);
            }
        }
        if (_metricsEndpoint is not null)
        {
            await _metricsEndpoint.DisposeAsync();
        }
        _log.Information("Stopped");
    }

    public int ActiveConnections
    {
        get
        {
            lock (_connectionsLock)
            {
                return _connections.Count;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await StopAsync();
        await _heartbeat.DisposeAsync();
        _metrics.Dispose();
        _stopping.Dispose();
        _aborting.Dispose();
    }

    private Task WaitForConnectionsAsync()
    {
        lock (_connectionsLock)
        {
            return Task.WhenAll(_connections.Values);
        }
    }

    private async Task AcceptLoopAsync()
    {
        _log.Information("Listening on {EndPoint}", LocalEndPoint);
        var failures = new AcceptFailures(_log);
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception e) when (_stopping.IsCancellationRequested && e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                break;
            }
            catch (SocketException e)
            {
                // EMFILE, ENFILE, ENOBUFS, ECONNABORTED: the listener is fine, but out of descriptors the same
                // accept fails again at once. Without a pause this loop logged a stack trace per failure (about
                // 2,500 a second, 24,000 lines) at full speed; a pause lets connections close and descriptors
                // come back.
                var pause = failures.Failed(e);
                try
                {
                    await Task.Delay(pause, _stopping.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                continue;
            }
            failures.Succeeded();
            var id = Interlocked.Increment(ref _nextConnectionId);
            Interlocked.Increment(ref _counters.ConnectionsAccepted);
            var address = ClientAddress(socket);
            string? refusal = null;
            byte[]? refusalFrame = null;
            lock (_connectionsLock)
            {
                var fromAddress = _perAddress.GetValueOrDefault(address);
                if (_connections.Count >= _connectionLimit)
                {
                    (refusal, refusalFrame) = ($"{_connectionLimit} connections already open", BusyFrames.Server);
                }
                else if (_options.MaxConnectionsPerAddress > 0 && fromAddress >= _options.MaxConnectionsPerAddress)
                {
                    (refusal, refusalFrame) = ($"{fromAddress} connections already open from {address}", BusyFrames.Address);
                }
                else
                {
                    _perAddress[address] = fromAddress + 1;
                    _connections[id] = Task.CompletedTask; // the slot, counted, until the connection's task is known
                }
            }
            if (refusal is not null)
            {
                RefuseBusy(socket, id, refusal, refusalFrame!);
                continue;
            }
            StartConnection(socket, id, address);
        }
    }

    /// <summary>
    /// Runs a new connection on the accept loop's thread up to its first wait: its request, when it is already
    /// there, is read and answered (a hit's head and first sendfile) before the next accept. Queued to the thread
    /// pool instead, the connection's start waited behind every running body's send turn: in bench workload b
    /// (50 clients, 100 MiB hits) 11 ms from accept to the request's read under strace, median first byte 1.35-1.85
    /// of the best other cache. Outside <see cref="_connectionsLock"/>, whose slot the accept loop reserved. A TLS
    /// connection still starts on the thread pool (<see cref="RunConnectionAsync"/>).
    /// </summary>
    private void StartConnection(Socket socket, long id, IPAddress address)
    {
        Task task;
        SocketSender.OnAcceptLoop = true;
        try
        {
            task = RunConnectionAsync(socket, id);
        }
        finally
        {
            SocketSender.OnAcceptLoop = false;
        }
        lock (_connectionsLock)
        {
            _connections[id] = task;
        }
        // Added after the task is stored, so the removal always comes after it.
        _ = task.ContinueWith(_ =>
        {
            lock (_connectionsLock)
            {
                _connections.Remove(id);
                ReleaseAddress(address);
            }
        }, TaskScheduler.Default);
    }

    private static class BusyFrames
    {
        public static readonly byte[] Server = BusyFrame("server busy: too many connections, try again later");
        public static readonly byte[] Address = BusyFrame("server busy: too many connections from your address, try again later");
    }

    /// <summary>The peer's address, an IPv4-mapped IPv6 one as the IPv4 address it is (the same host either way).</summary>
    private static IPAddress ClientAddress(Socket socket)
    {
        var address = (socket.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
    }

    /// <summary>Called under <see cref="_connectionsLock"/>.</summary>
    private void ReleaseAddress(IPAddress address)
    {
        var left = _perAddress[address] - 1;
        if (left == 0)
        {
            _perAddress.Remove(address);
        }
        else
        {
            _perAddress[address] = left;
        }
    }

    /// <summary>
    /// Connections served at once: <see cref="ProtocolServerOptions.MaxConnections"/>, or fewer when the open file
    /// limit would run out first. Each connection holds a descriptor; with every descriptor taken, the runtime
    /// itself cannot open one (to load an assembly, say) and the process died with "Out of memory." (3 of 3 runs
    /// at a limit of 160 and 400 connections). What is open already (about 60 at start: the runtime keeps loaded
    /// assemblies open) plus a reserve of a quarter of the limit, at least 64, stays free for files, upstream
    /// connections, the runtime and the accept-then-close of a Busy answer.
    /// </summary>
    internal static int ConnectionLimit(int maxConnections, Native.Posix.FileLimit? fileLimit, int openNow)
    {
        if (fileLimit is not { } limit)
        {
            return maxConnections;
        }
        var soft = (long)Math.Min(limit.Soft, int.MaxValue);
        var room = soft - openNow - Math.Max(64, soft / 4);
        return (int)Math.Clamp(room, 1, maxConnections);
    }

    /// <summary>
    /// Answers Busy and closes, at once and on the accept loop: a refusal is one small non-blocking send into an
    /// empty socket buffer. Refusing on a task of its own let a flood hold every descriptor in refusals waiting to
    /// run (400 connections at a limit of 160).
    /// </summary>
    private void RefuseBusy(Socket socket, long id, string reason, byte[] frame)
    {
        using (socket)
        {
            Interlocked.Increment(ref _counters.ConnectionsRefused);
            // Under a flood every refusal would be a line: the first says why, then one line per interval counts.
            if (_busyLog.ShouldLog(out var suppressed))
            {
                _log.Warning("Connection {ConnectionId} from {RemoteEndPoint} refused as Busy: {Reason} ({Suppressed} more refused since the last such line)",
                    id, socket.RemoteEndPoint, reason, suppressed);
            }
            try
            {
                socket.Blocking = false;
                socket.Send(frame, SocketFlags.None);
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // The refused peer is gone already, or its buffer is full; closing tells it enough.
            }
        }
    }

    private static byte[] BusyFrame(string message)
    {
        var frame = new byte[256];
        var length = WireCodec.EncodeResponse(Opcode.ErrorResponse, ResponseHead.Error(StatusCode.Busy, message), frame);
        return frame[..length];
    }

    private async Task RunConnectionAsync(Socket socket, long id)
    {
        if (_options.TlsCertificate is not null)
        {
            await Task.Yield(); // a TLS handshake's signature is CPU work: not on the accept loop, one at a time
        }
        var log = _log.ForContext("ConnectionId", id).ForContext("RemoteEndPoint", socket.RemoteEndPoint);
        try
        {
            SocketSetup.ConfigureServed(socket, _options.Mptcp);
            using var link = await OpenLinkAsync(socket, log);
            if (link is null)
            {
                return;
            }
            using var connection = new Connection(this, link, log);
            await connection.RunAsync();
        }
        catch (Exception e)
        {
            log.Error(e, "Connection failed unexpectedly");
        }
        finally
        {
            socket.Dispose();
        }
    }

    /// <summary>The connection's byte stream: the socket itself, or TLS over it once the handshake succeeded within
    /// the header timeout (null when it did not: logged, and the connection closes).</summary>
    private async ValueTask<Link?> OpenLinkAsync(Socket socket, ILogger log)
    {
        if (_options.TlsCertificate is null)
        {
            return new Link(socket);
        }
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_aborting.Token);
            timeout.CancelAfter(_options.HeaderTimeout);
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = _options.TlsCertificate,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            }, timeout.Token);
            return new Link(socket, tls);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or SocketException)
        {
            Interlocked.Increment(ref _counters.TlsHandshakesFailed);
            log.Warning("TLS handshake failed: {Reason}", e is OperationCanceledException ? "not completed in time" : e.Message);
            await tls.DisposeAsync();
            return null;
        }
    }

    private List<KeyValuePair<string, long>> Counters()
    {
        List<KeyValuePair<string, long>> counters =
        [
            new("connections_accepted", Interlocked.Read(ref _counters.ConnectionsAccepted)),
            new("connections_active", ActiveConnections),
            new("connections_refused_busy", Interlocked.Read(ref _counters.ConnectionsRefused)),
            new("requests", Interlocked.Read(ref _counters.Requests)),
            new("requests_failed", Interlocked.Read(ref _counters.RequestsFailed)),
            new("bytes_served", Interlocked.Read(ref _counters.BytesServed)),
            new("tls_handshakes_failed", Interlocked.Read(ref _counters.TlsHandshakesFailed)),
            new("auth_refused", Interlocked.Read(ref _counters.AuthRefused)),
        ];
        if (_options.LogLinesDropped is { } logLinesDropped)
        {
            counters.Add(new("log_lines_dropped", logLinesDropped()));
        }
        counters.AddRange(_source.Counters);
        return counters;
    }

    private sealed class ServerCounters
    {
        public long ConnectionsAccepted;
        public long ConnectionsRefused;
        public long Requests;
        public long RequestsFailed;
        public long BytesServed;
        public long TlsHandshakesFailed;
        public long AuthRefused;
    }
}
