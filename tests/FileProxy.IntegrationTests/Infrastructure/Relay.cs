using System.Net;
using System.Net.Sockets;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// A fault-injecting TCP relay on loopback port 0 in front of one server: a second "path" to it. It can cut every
/// connection after a number of bytes towards the client (a path that dies mid-transfer) or stop forwarding while
/// keeping the connections open (a path that goes silent).
/// </summary>
public sealed class Relay : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _pumps = [];
    private readonly List<Socket> _sockets = [];
    private readonly Task _accepting;
    private long _cutAfter = -1;
    private volatile bool _cutWithReset = true;
    private long _forwarded;
    private volatile bool _frozen;

    public Relay(IPEndPoint target, IPAddress? listen = null)
    {
        _target = target;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(listen ?? IPAddress.Loopback, 0));
        _listener.Listen(16);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Bytes relayed towards the client so far, over every connection.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Connections are reset (or, without <paramref name="reset"/>, closed in order: a FIN, as a middlebox
    /// or a server dropping the connection would) once <paramref name="bytes"/> in all went towards the client.</summary>
    public void CutAfter(long bytes, bool reset = true)
    {
        _cutWithReset = reset;
        Interlocked.Exchange(ref _cutAfter, bytes);
    }

    /// <summary>From now on nothing more is forwarded; connections stay open.</summary>
    public void Freeze() => _frozen = true;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
        }
        await _accepting;
        Task[] pumps;
        lock (_pumps)
        {
            pumps = [.. _pumps];
        }
        await Task.WhenAll(pumps);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptAsync(_stop.Token);
                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(_target, _stop.Token);
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _sockets.Add(server);
                }
                lock (_pumps)
                {
                    _pumps.Add(PumpAsync(client, server, towardsClient: false));
                    _pumps.Add(PumpAsync(server, client, towardsClient: true));
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Relay disposed.
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool towardsClient)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                if (towardsClient)
                {
                    while (_frozen)
                    {
                        await Task.Delay(20, _stop.Token);
                    }
                    var cutAfter = Interlocked.Read(ref _cutAfter);
                    var before = Interlocked.Add(ref _forwarded, read) - read;
                    if (cutAfter >= 0 && before + read > cutAfter)
                    {
                        var allowed = (int)Math.Max(0, cutAfter - before);
                        await to.SendAsync(buffer.AsMemory(0, allowed), _stop.Token);
                        if (_cutWithReset)
                        {
                            to.LingerState = new LingerOption(true, 0); // reset, as a path that died
                        }
                        else
                        {
                            to.Shutdown(SocketShutdown.Both);
                        }
                        to.Dispose();
                        from.Dispose();
                        return;
                    }
                }
                await to.SendAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            to.Dispose();
            from.Dispose();
        }
    }
}
