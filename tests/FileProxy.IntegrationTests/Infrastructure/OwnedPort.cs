using System.Net;
using System.Net.Sockets;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// A loopback port a test owns for its whole life, also while nothing listens on it. A placeholder socket stays
/// bound (never listening, so connections are refused) with SO_REUSEPORT, which lets this owner's own listeners bind
/// the same port again and again; the kernel never hands the port to anyone else meanwhile. Releasing a port and
/// binding it again later, the alternative, lets another test take it in between.
/// </summary>
public sealed class OwnedPort : IDisposable
{
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

    private readonly Socket _placeholder;

    public OwnedPort()
    {
        _placeholder = Create();
        _placeholder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_placeholder.LocalEndPoint!).Port;
    }

    public int Port { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    /// <summary>A new listening socket on the port, for one server's life (the server closes it).</summary>
    public Socket Listen()
    {
        var socket = Create();
        try
        {
            socket.Bind(EndPoint);
            socket.Listen(1024);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _placeholder.Dispose();

    private static Socket Create()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
        return socket;
    }
}
