using System.Net;
using System.Net.Sockets;
using System.Text;
using FileProxy.Protocol.Transport;
using Serilog;

namespace FileProxy.Protocol.Metrics;

/// <summary>
/// Serves <c>GET /metrics</c> over plain HTTP/1.x for Prometheus: one request per connection, answered and closed.
/// A small responder of our own rather than HttpListener, which cannot bind port 0 and say which port it got, and
/// which the NativeAOT executables would carry for this one page. Requests are bounded in size (8 KiB), time (5 s)
/// and number at once (8); anything else gets 404, 405 or 400 and the connection closes.
/// </summary>
public sealed class MetricsEndpoint : IAsyncDisposable
{
    private const int MaxRequestBytes = 8 * 1024;
    private const int MaxConcurrent = 8;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    private readonly Socket _listener;
    private readonly PrometheusExporter _exporter;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private Task? _acceptLoop;
    private int _running;
    private int _disposed;

    /// <summary>Binds <paramref name="endPoint"/> at once, so a taken port is a start error: throws a
    /// <see cref="SocketException"/> whose message names the address.</summary>
    public MetricsEndpoint(IPEndPoint endPoint, System.Diagnostics.Metrics.Meter meter, ILogger log)
    {
        try
        {
            _listener = SocketSetup.Listen(endPoint, mptcp: false, backlog: 64);
        }
        catch (SocketException e)
        {
            throw new SocketException((int)e.SocketErrorCode, $"--metrics-listen: {e.Message}");
        }
        _exporter = new PrometheusExporter(meter);
        _log = log.ForContext<MetricsEndpoint>();
        LocalEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    /// <summary>The bound address; the real port when port 0 was asked for.</summary>
    public IPEndPoint LocalEndPoint { get; }

    public void Start()
    {
        if (_acceptLoop is null)
        {
            _log.Information("Serving metrics at http://{EndPoint}/metrics", LocalEndPoint);
            _acceptLoop = AcceptLoopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stopping.CancelAsync();
        _listener.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }
        _exporter.Dispose();
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        var failures = new Server.AcceptFailures(_log);
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
                try
                {
                    await Task.Delay(failures.Failed(e), _stopping.Token); // out of descriptors: the same pauses as the main port
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                continue;
            }
            failures.Succeeded();
            if (Interlocked.Increment(ref _running) > MaxConcurrent)
            {
                Interlocked.Decrement(ref _running);
                socket.Dispose();
                continue;
            }
            _ = ServeAsync(socket);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using (socket)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                timeout.CancelAfter(RequestTimeout);
                var request = await ReadRequestAsync(socket, timeout.Token);
                var (status, body) = request switch
                {
                    null => ("400 Bad Request", "bad request\n"),
                    ("GET" or "HEAD", "/metrics") => ("200 OK", _exporter.Scrape()),
                    ("GET" or "HEAD", _) => ("404 Not Found", "not found: metrics are at /metrics\n"),
                    _ => ("405 Method Not Allowed", "only GET\n"),
                };
                var bytes = Encoding.UTF8.GetBytes(body);
                var head = Encoding.ASCII.GetBytes(
                    $"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n");
                await socket.SendAsync(head, SocketFlags.None, timeout.Token);
                if (request?.Method != "HEAD")
                {
                    await socket.SendAsync(bytes, SocketFlags.None, timeout.Token);
                }
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                _log.Debug("Metrics request from {RemoteEndPoint} not answered: {Reason}", socket.RemoteEndPoint, e.Message);
            }
            catch (Exception e)
            {
                _log.Error(e, "Metrics request failed");
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }
    }

    /// <summary>The request line's method and path (without a query), once the whole head arrived; null for a head
    /// that is too long, cut or not HTTP.</summary>
    private static async Task<(string Method, string Path)?> ReadRequestAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxRequestBytes];
        var length = 0;
        while (length < buffer.Length)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                return null;
            }
            length += read;
            var end = buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                var line = Encoding.ASCII.GetString(buffer, 0, buffer.AsSpan(0, end).IndexOf("\r\n"u8) is var eol and >= 0 ? eol : end);
                var parts = line.Split(' ');
                if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
                {
                    return null;
                }
                var path = parts[1];
                var query = path.IndexOf('?', StringComparison.Ordinal);
                return (parts[0], query >= 0 ? path[..query] : path);
            }
        }
        return null;
    }
}
