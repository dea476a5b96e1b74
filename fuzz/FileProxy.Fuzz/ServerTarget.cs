using System.Net;
using System.Net.Sockets;
using FileProxy.Protocol.Server;
using FileProxy.Server;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace FileProxy.Fuzz;

/// <summary>
/// The request handler, whole: an origin server on loopback over a small directory. Each input is sent on a new
/// connection, which is then half-closed; the server must answer and close within <see cref="Deadline"/> and
/// log no Error (an Error is a bug by the project's rules: bad input is a Warning and an answer).
/// </summary>
internal sealed class ServerTarget : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(3);

    private readonly string _root;
    private readonly ErrorSink _errors;
    private readonly ProtocolServer _server;
    private readonly byte[] _readBuffer = new byte[64 * 1024];

    private ServerTarget(string root, ErrorSink errors, ProtocolServer server)
    {
        _root = root;
        _errors = errors;
        _server = server;
    }

    public static ServerTarget Start()
    {
        var root = Directory.CreateTempSubdirectory("fileproxy-fuzz-").FullName;
        File.WriteAllText(Path.Combine(root, "a.txt"), "hello, fuzzer\n");
        Directory.CreateDirectory(Path.Combine(root, "dir"));
        File.WriteAllBytes(Path.Combine(root, "dir", "b.bin"), new byte[70_000]);
        File.CreateSymbolicLink(Path.Combine(root, "outside"), "/etc/hostname");
        var errors = new ErrorSink();
        var log = new LoggerConfiguration().MinimumLevel.Warning().WriteTo.Sink(errors).CreateLogger();
        var server = OriginServer.Create(root, OriginServer.Loopback() with
        {
            HeaderTimeout = TimeSpan.FromSeconds(1),
            IdleTimeout = TimeSpan.FromSeconds(1),
            DrainTimeout = TimeSpan.FromSeconds(1),
        }, log);
        server.Start();
        return new ServerTarget(root, errors, server);
    }

    public void Run(byte[] input)
    {
        var errorsBefore = _errors.Count;
        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            socket.ReceiveTimeout = (int)Deadline.TotalMilliseconds;
            socket.SendTimeout = (int)Deadline.TotalMilliseconds;
            socket.Connect(new IPEndPoint(IPAddress.Loopback, _server.LocalEndPoint.Port));
            try
            {
                socket.Send(input);
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted)
            {
                // The server answered and closed before it read all of the input: allowed.
            }
            var started = Environment.TickCount64;
            try
            {
                while (socket.Receive(_readBuffer) > 0)
                {
                    if (Environment.TickCount64 - started > Deadline.TotalMilliseconds)
                    {
                        throw new FuzzFailure("the server kept sending after the input ended");
                    }
                }
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                throw new FuzzFailure($"the server neither answered nor closed within {Deadline.TotalSeconds} s");
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                // Closed with unread input: allowed.
            }
        }
        if (_errors.Count != errorsBefore)
        {
            throw new FuzzFailure($"the server logged an error: {_errors.Last}");
        }
    }

    public void Dispose()
    {
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_root, recursive: true);
    }

    private sealed class ErrorSink : ILogEventSink
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public string? Last { get; private set; }

        public void Emit(LogEvent logEvent)
        {
            if (logEvent.Level >= LogEventLevel.Error)
            {
                Last = $"{logEvent.RenderMessage(System.Globalization.CultureInfo.InvariantCulture)} {logEvent.Exception}";
                Interlocked.Increment(ref _count);
            }
        }
    }
}
