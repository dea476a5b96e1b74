using System.Net;
using System.Net.Sockets;
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
    private readonly IFileSource _source;
    private readonly ProtocolServerOptions _options;
    private readonly ILogger _log;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _aborting = new();
    private readonly Dictionary<long, Task> _connections = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Connection, byte> _live = new();
    private readonly Timer _heartbeat;
    private readonly Lock _connectionsLock = new();
    private readonly ServerCounters _counters = new();
    private Task? _acceptLoop;
    private long _nextConnectionId;
    private int _disposed;

    public ProtocolServer(IFileSource source, ProtocolServerOptions options, ILogger? log = null)
    {
        _source = source;
        _options = options;
        _log = (log ?? Log.Logger).ForContext<ProtocolServer>();
        _listener = SocketSetup.Listen(options.EndPoint, options.Mptcp);
        LocalEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        var beat = TimeSpan.FromMilliseconds(Math.Clamp(
            Math.Min(options.HeaderTimeout.TotalMilliseconds, options.IdleTimeout.TotalMilliseconds) / 4, 10, 1000));
        _heartbeat = new Timer(static state => ((ProtocolServer)state!).Heartbeat(), this, beat, beat);
    }

    /// <summary>Enforces the idle and header timeouts of every connection.</summary>
    private void Heartbeat()
    {
        var now = Environment.TickCount64;
        foreach (var connection in _live.Keys)
        {
            connection.CheckTimeout(now);
        }
    }

    /// <summary>The bound address; the port is the real one when the options asked for port 0.</summary>
    public IPEndPoint LocalEndPoint { get; }

    public IFileSource Source => _source;

    /// <summary>Starts accepting connections.</summary>
    public void Start() => _acceptLoop ??= AcceptLoopAsync();

    /// <summary>Stops accepting, lets running transfers finish for up to the drain timeout, then cuts the rest.</summary>
    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            await WaitForConnectionsAsync();
            return;
        }
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
            await drained;
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
                // EMFILE, ECONNABORTED and the like: this one connection is lost, the listener is not.
                _log.Warning(e, "Accept failed: {SocketError}", e.SocketErrorCode);
                continue;
            }
            var id = Interlocked.Increment(ref _nextConnectionId);
            Interlocked.Increment(ref _counters.ConnectionsAccepted);
            lock (_connectionsLock)
            {
                var busy = _connections.Count >= _options.MaxConnections;
                var task = busy ? RefuseBusyAsync(socket, id) : RunConnectionAsync(socket, id);
                _connections[id] = task;
                _ = task.ContinueWith(_ =>
                {
                    lock (_connectionsLock)
                    {
                        _connections.Remove(id);
                    }
                }, TaskScheduler.Default);
            }
        }
    }

    private async Task RefuseBusyAsync(Socket socket, long id)
    {
        await Task.Yield();
        using (socket)
        {
            Interlocked.Increment(ref _counters.ConnectionsRefused);
            _log.Warning("Connection {ConnectionId} from {RemoteEndPoint} refused: {MaxConnections} connections already open",
                id, socket.RemoteEndPoint, _options.MaxConnections);
            try
            {
                var frame = new byte[256];
                var length = WireCodec.EncodeResponse(Opcode.ErrorResponse,
                    ResponseHead.Error(StatusCode.Busy, "server busy: too many connections, try again later"), frame);
                using var timeout = new CancellationTokenSource(_options.HeaderTimeout);
                await socket.SendAsync(frame.AsMemory(0, length), SocketFlags.None, timeout.Token);
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The refused peer is gone already; nothing to tell it.
            }
        }
    }

    private async Task RunConnectionAsync(Socket socket, long id)
    {
        await Task.Yield();
        var log = _log.ForContext("ConnectionId", id).ForContext("RemoteEndPoint", socket.RemoteEndPoint);
        try
        {
            SocketSetup.Configure(socket, _options.Mptcp);
            using var connection = new Connection(this, socket, log);
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
        ];
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
    }
}
