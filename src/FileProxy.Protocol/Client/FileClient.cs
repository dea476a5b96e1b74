using System.Buffers;
using System.Net;
using System.Net.Sockets;
using FileProxy.Protocol.Transport;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Client;

/// <summary>
/// One persistent connection to a FileProxy server or proxy. Requests go one at a time: a GET's body must be read
/// to its end (or the response disposed, which closes the connection) before the next request.
/// Network failures throw <see cref="UpstreamException"/>; answers with an error status are returned, not thrown.
/// </summary>
public sealed class FileClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly FrameReader _reader;
    private readonly FileClientOptions _options;
    private readonly byte[] _requestBuffer = new byte[WireCodec.MaxRequestFrame];
    private GetResponse? _openResponse;
    private CancellationTokenSource _timeout = new();
    private bool _broken;
    private int _disposed;

    private FileClient(Socket socket, FileClientOptions options)
    {
        _socket = socket;
        _options = options;
        _reader = new FrameReader(socket, ProtocolLimits.MaxFrameLength);
        RemoteEndPoint = socket.RemoteEndPoint!;
    }

    public EndPoint RemoteEndPoint { get; }

    /// <summary>False once the connection failed or a body was abandoned; such a client cannot be reused.</summary>
    public bool IsReusable => !_broken && _openResponse is null && _disposed == 0;

    internal FileClientOptions Options => _options;

    /// <summary>Whether this connection travels over MPTCP, and on how many subflows right now.</summary>
    public MptcpStatus Mptcp => Transport.Mptcp.StatusOf(_socket, _options.Mptcp);

    public static async Task<FileClient> ConnectAsync(string host, int port, FileClientOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new FileClientOptions();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            var socket = await SocketSetup.ConnectAsync(host, port, options.Mptcp, timeout.Token);
            return new FileClient(socket, options);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamException($"connecting to {host}:{port} timed out after {options.ConnectTimeout.TotalSeconds} s");
        }
        catch (SocketException e)
        {
            throw new UpstreamException($"cannot connect to {host}:{port}: {e.Message}", e);
        }
    }

    public Task<ResponseHead> StatAsync(string name, CancellationToken cancellationToken = default) =>
        RequestAsync(new StatRequest(name), cancellationToken);

    public Task<ResponseHead> StatsAsync(CancellationToken cancellationToken = default) =>
        RequestAsync(new StatsRequest(), cancellationToken);

    public Task<ResponseHead> PurgeAsync(string name, CancellationToken cancellationToken = default) =>
        RequestAsync(new PurgeRequest(name), cancellationToken);

    /// <summary>Sends a GET and reads the response head. When Ok, read the body from the returned response.</summary>
    public async Task<GetResponse> GetAsync(GetRequest request, CancellationToken cancellationToken = default)
    {
        var head = await RequestAsync(request, cancellationToken);
        if (head.IsOk && ((ulong)head.Offset != request.Offset || (ulong)head.Length > request.Length))
        {
            _broken = true;
            await DisposeAsync();
            throw new UpstreamException(
                $"{RemoteEndPoint} answered range {head.Offset}+{head.Length} to a request for {request.Offset}+{request.Length}");
        }
        var response = new GetResponse(this, head);
        if (head.IsOk && head.Length > 0)
        {
            _openResponse = response;
        }
        return response;
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _socket.Dispose();
            _reader.Dispose();
            _timeout.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    private async Task<ResponseHead> RequestAsync(Request request, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_openResponse is not null)
        {
            throw new InvalidOperationException("the previous response's body has not been read to its end");
        }
        if (_broken)
        {
            throw new UpstreamException("connection is no longer usable after an earlier failure");
        }
        var length = WireCodec.EncodeRequest(request, _requestBuffer);
        using var registration = Arm(cancellationToken, out var token);
        try
        {
            var data = _requestBuffer.AsMemory(0, length);
            while (!data.IsEmpty)
            {
                data = data[await _socket.SendAsync(data, SocketFlags.None, token)..];
            }
            var frame = await _reader.ReadFrameAsync(null, token)
                ?? throw new UpstreamException($"{RemoteEndPoint} closed the connection without answering");
            return WireCodec.DecodeResponse(request.Opcode, frame.Header, frame.Payload.Span);
        }
        catch (Exception e) when (Fail(e, cancellationToken) is { } wrapped)
        {
            throw wrapped;
        }
    }

    internal async ValueTask<int> ReadBodyAsync(GetResponse response, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (response.Remaining == 0)
        {
            return 0;
        }
        if (destination.Length > response.Remaining)
        {
            destination = destination[..(int)response.Remaining];
        }
        int read;
        using var registration = Arm(cancellationToken, out var token);
        try
        {
            read = await _reader.ReadBodyAsync(destination, token);
        }
        catch (Exception e) when (Fail(e, cancellationToken) is { } wrapped)
        {
            throw wrapped;
        }
        if (read == 0)
        {
            _broken = true;
            _openResponse = null;
            throw new UpstreamException(
                $"{RemoteEndPoint} closed the connection after {response.Head.Length - response.Remaining} of {response.Head.Length} body bytes");
        }
        response.Remaining -= read;
        if (response.Remaining == 0)
        {
            _openResponse = null;
            if (_options.Mptcp)
            {
                Transport.Mptcp.LogSubflows(Serilog.Log.ForContext<FileClient>().ForContext(nameof(RemoteEndPoint), RemoteEndPoint), _socket);
            }
        }
        return read;
    }

    /// <summary>Arms this connection's one reusable timeout for the next operation and ties the caller's token to
    /// it (no linked token source per request: small requests are dominated by such costs).</summary>
    private CancellationTokenRegistration Arm(CancellationToken cancellationToken, out CancellationToken token)
    {
        if (!_timeout.TryReset())
        {
            _timeout.Dispose();
            _timeout = new CancellationTokenSource();
        }
        _timeout.CancelAfter(_options.ResponseTimeout);
        token = _timeout.Token;
        return cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _timeout)
            : default;
    }

    /// <summary>Whether body bytes can be read now without waiting for the network.</summary>
    internal bool HasPendingBytes => _reader.Buffered > 0 || _socket.Available > 0;

    internal void Abandon(GetResponse response)
    {
        if (ReferenceEquals(_openResponse, response))
        {
            // Unread body bytes are still on the wire: the stream position is lost.
            _openResponse = null;
            _broken = true;
            _socket.Dispose();
        }
    }

    /// <summary>Marks the connection broken and turns transport failures into <see cref="UpstreamException"/>.
    /// Returns null for the caller's own cancellation, which propagates as is.</summary>
    private UpstreamException? Fail(Exception e, CancellationToken cancellationToken)
    {
        _broken = true;
        _openResponse = null;
        return e switch
        {
            OperationCanceledException when cancellationToken.IsCancellationRequested => null,
            OperationCanceledException => new UpstreamException(
                $"{RemoteEndPoint} did not answer within {_options.ResponseTimeout.TotalSeconds} s", e),
            ProtocolException => new UpstreamException($"{RemoteEndPoint} broke the protocol: {e.Message}", e),
            EndOfStreamException => new UpstreamException($"{RemoteEndPoint} closed the connection mid-frame", e),
            SocketException or IOException or ObjectDisposedException =>
                new UpstreamException($"connection to {RemoteEndPoint} failed: {e.Message}", e),
            _ => null,
        };
    }
}

/// <summary>A GET's response head and, when Ok, its body still on the wire.</summary>
public sealed class GetResponse : IAsyncDisposable
{
    private readonly FileClient _client;

    internal GetResponse(FileClient client, ResponseHead head)
    {
        _client = client;
        Head = head;
        Remaining = head.IsOk ? head.Length : 0;
    }

    public ResponseHead Head { get; }

    /// <summary>Body bytes not read yet.</summary>
    public long Remaining { get; internal set; }

    /// <summary>Reads the next body bytes; 0 once the whole body was read. A connection that closes early throws
    /// <see cref="UpstreamException"/>: a body is never silently short.</summary>
    public ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default) =>
        _client.ReadBodyAsync(this, destination, cancellationToken);

    /// <summary>Whether more body bytes are already here, readable without waiting for the network.</summary>
    public bool HasBufferedBytes => Remaining > 0 && _client.HasPendingBytes;

    /// <summary>Copies the rest of the body to <paramref name="destination"/>.</summary>
    public async Task CopyToAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            int read;
            while ((read = await ReadAsync(buffer, cancellationToken)) > 0)
            {
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Closes the connection if the body was not read to its end.</summary>
    public ValueTask DisposeAsync()
    {
        _client.Abandon(this);
        return ValueTask.CompletedTask;
    }
}
