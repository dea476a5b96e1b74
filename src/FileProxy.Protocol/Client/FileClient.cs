using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using FileProxy.Protocol.Server;
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
    private readonly Link _link;
    private readonly FrameReader _reader;
    private readonly FileClientOptions _options;
    private readonly byte[] _requestBuffer = new byte[WireCodec.MaxRequestFrame];
    private GetResponse? _openResponse;
    private CancellationTokenSource _timeout = new();
    private bool _broken;
    private int _disposed;

    private FileClient(Link link, FileClientOptions options)
    {
        _link = link;
        _socket = link.Socket;
        _options = options;
        _reader = new FrameReader(link, ProtocolLimits.MaxFrameLength);
        RemoteEndPoint = _socket.RemoteEndPoint!;
    }

    public EndPoint RemoteEndPoint { get; }

    /// <summary>False once the connection failed or a body was abandoned; such a client cannot be reused.</summary>
    public bool IsReusable => !_broken && _openResponse is null && _disposed == 0;

    internal FileClientOptions Options => _options;

    /// <summary>The pool that opened this connection, which takes it back whichever pool it is handed to.</summary>
    public FileClientPool? Pool { get; internal set; }

    /// <summary>Whether this connection travels over MPTCP, and on how many subflows right now.</summary>
    public MptcpStatus Mptcp => Transport.Mptcp.StatusOf(_socket, _options.Mptcp);

    public static async Task<FileClient> ConnectAsync(string host, int port, FileClientOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new FileClientOptions();
        FileClient? client = null;
        try
        {
            client = new FileClient(await OpenLinkAsync(host, port, options, cancellationToken), options);
            if (options.Token is not null)
            {
                var head = await client.RequestAsync(new AuthRequest(options.Token), cancellationToken);
                if (!head.IsOk)
                {
                    throw new UpstreamException($"{host}:{port} refused the token: {head.Message}", head.Status);
                }
            }
            return client;
        }
        catch (Exception e)
        {
            if (client is not null)
            {
                await client.DisposeAsync();
            }
            if (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            throw ConnectFailure(e, $"{host}:{port}", options);
        }
    }

    /// <summary>A connection to <paramref name="host"/>:<paramref name="port"/> as <paramref name="options"/> ask
    /// (MPTCP or TCP, then TLS when asked), within their connect timeout: what every connection of this library
    /// starts with, a <see cref="FileClient"/>'s or a multipath subflow's. The caller presents the token.</summary>
    internal static async Task<Link> OpenLinkAsync(string host, int port, FileClientOptions options, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        var socket = await SocketSetup.ConnectAsync(host, port, options.Mptcp, timeout.Token);
        return options.Tls ? await StartTlsAsync(socket, host, options, timeout.Token) : new Link(socket);
    }

    /// <summary>What a failure to connect to <paramref name="address"/> (or to start TLS or AUTH there) tells the caller.</summary>
    internal static Exception ConnectFailure(Exception e, string address, FileClientOptions options) => e switch
    {
        UpstreamException => e,
        OperationCanceledException => new UpstreamException(
            $"connecting to {address} timed out after {Units.FormatDuration(options.ConnectTimeout)}", e),
        SocketException => new UpstreamException($"cannot connect to {address}: {e.Message}", e),
        AuthenticationException => new UpstreamException($"TLS with {address} failed: {e.Message}", e) { Permanent = true },
        IOException => new UpstreamException($"TLS with {address} failed: {e.Message}", e),
        _ => e,
    };

    /// <summary>TLS over a connected socket, the server's certificate checked for <paramref name="host"/> against
    /// the system's trust store or the options' own trusted certificates.</summary>
    private static async Task<Link> StartTlsAsync(Socket socket, string host, FileClientOptions options, CancellationToken cancellationToken)
    {
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true));
        try
        {
            var authentication = new SslClientAuthenticationOptions
            {
                TargetHost = host,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            };
            if (options.TlsTrust is { } trust)
            {
                authentication.CertificateChainPolicy = new X509ChainPolicy
                {
                    TrustMode = X509ChainTrustMode.CustomRootTrust,
                    RevocationMode = X509RevocationMode.NoCheck,
                };
                authentication.CertificateChainPolicy.CustomTrustStore.AddRange(trust);
            }
            await tls.AuthenticateAsClientAsync(authentication, cancellationToken);
            return new Link(socket, tls);
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    public Task<ResponseHead> StatAsync(string name, CancellationToken cancellationToken = default) =>
        RequestAsync(new StatRequest(name), cancellationToken).AsTask();

    public Task<ResponseHead> StatsAsync(CancellationToken cancellationToken = default) =>
        RequestAsync(new StatsRequest(), cancellationToken).AsTask();

    public Task<ResponseHead> PurgeAsync(string name, CancellationToken cancellationToken = default) =>
        RequestAsync(new PurgeRequest(name), cancellationToken).AsTask();

    /// <summary>Asks for one page of a directory's entries (<paramref name="directory"/> empty: the root) after
    /// <paramref name="cursor"/>. A peer that does not know LIST (an older version answers <c>0xFF</c> / BadRequest
    /// `unknown opcode`, and keeps the connection open) is answered here as NotSupported, saying so.</summary>
    public async Task<ResponseHead> ListAsync(string directory, string cursor = "", ushort limit = 0, CancellationToken cancellationToken = default)
    {
        var head = await RequestAsync(new ListRequest(directory, cursor, limit), cancellationToken);
        if (head is { OnErrorFrame: true, Status: StatusCode.BadRequest })
        {
            return ResponseHead.Error(StatusCode.NotSupported, $"the server does not support LIST (it answered: {head.Message})");
        }
        // Every page must move on from its cursor: one that repeats or goes back would keep a caller asking forever.
        if (head.Listing is { } page && cursor.Length > 0
            && ((page.Entries.Count > 0 && NameOrder.Instance.Compare(page.Entries[0].Name, cursor) <= 0)
                || (page.More && NameOrder.Instance.Compare(page.Next, cursor) <= 0)))
        {
            _broken = true;
            throw new UpstreamException($"{RemoteEndPoint} broke the protocol: a LIST page did not go on after its cursor");
        }
        return head;
    }

    /// <summary>Sends a GET and reads the response head. When Ok, read the body from the returned response.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // once per request: no box each time
    public async ValueTask<GetResponse> GetAsync(GetRequest request, CancellationToken cancellationToken = default)
    {
        var head = await RequestAsync(request, cancellationToken);
        // What a whole answer is follows from our own request and the file's size, never from the answer's length:
        // a peer that announces fewer bytes than asked for must not pass for a complete (or complete range) answer.
        if (head.IsOk && (head.File is null
            || !ByteRange.TryResolve(request.Offset, request.Length, head.File.Size, out var expected)
            || expected.Offset != head.Offset || expected.Length != head.Length))
        {
            _broken = true;
            await DisposeAsync();
            throw new UpstreamException(
                $"{RemoteEndPoint} answered bytes {head.Offset}+{head.Length} of a {head.File?.Size}-byte file to a request for {request.Offset}+{Describe(request.Length)}")
            { Permanent = true };
        }
        var response = new GetResponse(this, head);
        if (head.IsOk && head.Length > 0)
        {
            _openResponse = response;
        }
        return response;
    }

    private static string Describe(ulong length) => length == ProtocolLimits.ToEnd ? "the end" : length.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _link.Dispose();
            _reader.Dispose();
            _timeout.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ResponseHead> RequestAsync(Request request, CancellationToken cancellationToken)
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
        if (_options.HopMark)
        {
            request = request switch
            {
                GetRequest get => get with { Forwarded = true },
                StatRequest stat => stat with { Forwarded = true },
                _ => request,
            };
        }
        var length = WireCodec.EncodeRequest(request, _requestBuffer);
        using var registration = Arm(_options.ResponseTimeout, cancellationToken, out var token);
        try
        {
            await _link.SendAsync(_requestBuffer.AsMemory(0, length), token);
            var frame = await _reader.ReadFrameAsync(null, token)
                ?? throw new UpstreamException($"{RemoteEndPoint} closed the connection without answering");
            return WireCodec.DecodeResponse(request.Opcode, frame.Header, frame.Payload.Span);
        }
        catch (Exception e) when (Fail(e,
            $"answered nothing within {Units.FormatDuration(_options.ResponseTimeout)} (is it a FileProxy server?)", cancellationToken) is { } wrapped)
        {
            throw wrapped;
        }
    }

    internal ValueTask<int> ReadBodyAsync(GetResponse response, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (response.Remaining == 0)
        {
            return ValueTask.FromResult(0);
        }
        if (destination.Length > response.Remaining)
        {
            destination = destination[..(int)response.Remaining];
        }
        if (_reader.Buffered > 0 && _disposed == 0 && !cancellationToken.IsCancellationRequested)
        {
            // Bytes that came with the head (a small file's whole body): no wait, so no timeout to arm. (Disposed
            // or cancelled, the path below fails as it always did.)
            var copied = _reader.ReadBuffered(destination.Span);
            BodyRead(response, copied);
            return ValueTask.FromResult(copied);
        }
        return ReceiveBodyAsync(response, destination, cancellationToken);
    }

    private async ValueTask<int> ReceiveBodyAsync(GetResponse response, Memory<byte> destination, CancellationToken cancellationToken)
    {
        int read;
        using var registration = Arm(_options.IdleTimeout, cancellationToken, out var token);
        try
        {
            read = await _reader.ReadBodyAsync(destination, token);
        }
        catch (Exception e) when (Fail(e,
            $"sent no body byte for {Units.FormatDuration(_options.IdleTimeout)} ({response.Head.Length - response.Remaining} of {response.Head.Length} bytes received)",
            cancellationToken) is { } wrapped)
        {
            throw wrapped;
        }
        BodyRead(response, read);
        return read;
    }

    /// <summary>Counts <paramref name="read"/> body bytes as taken off the connection, by a read or a splice; 0 is
    /// the peer closing before the body's end.</summary>
    internal void BodyRead(GetResponse response, long read)
    {
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
    }

    /// <summary>Body bytes the frame reader took off the socket with the response head, not read yet.</summary>
    internal int BufferedBodyBytes => _reader.Buffered;

    /// <summary>The socket a body can be spliced from: a plain connection on Linux whose frame reader holds no body
    /// bytes (read those first), in non-blocking mode. Null otherwise.</summary>
    internal Socket? SpliceSource =>
        OperatingSystem.IsLinux() && _link.Tls is null && _reader.Buffered == 0 && !_broken
            && Native.Posix.IsNonBlocking((int)_socket.SafeHandle.DangerousGetHandle()) ? _socket : null;

    /// <summary>A splice from the socket failed with <paramref name="error"/> (an errno): the connection is lost.</summary>
    internal UpstreamException BodySpliceFailed(GetResponse response, int error)
    {
        _broken = true;
        _openResponse = null;
        return new UpstreamException(
            $"connection to {RemoteEndPoint} failed after {response.Head.Length - response.Remaining} of {response.Head.Length} body bytes: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(error)}");
    }

    /// <summary>Waits until body bytes can be read without waiting (a zero-byte receive: no buffer is held while
    /// the peer is silent), or the body is done. Same idle timeout as a read.</summary>
    internal async ValueTask WaitForBodyBytesAsync(GetResponse response, CancellationToken cancellationToken)
    {
        if (response.Remaining == 0 || _reader.Buffered > 0)
        {
            return;
        }
        using var registration = Arm(_options.IdleTimeout, cancellationToken, out var token);
        try
        {
            await _link.WaitReadableAsync(token);
        }
        catch (Exception e) when (Fail(e,
            $"sent no body byte for {Units.FormatDuration(_options.IdleTimeout)} ({response.Head.Length - response.Remaining} of {response.Head.Length} bytes received)",
            cancellationToken) is { } wrapped)
        {
            throw wrapped;
        }
    }

    /// <summary>Arms this connection's one reusable timeout for the next operation and ties the caller's token to
    /// it (no linked token source per request: small requests are dominated by such costs).</summary>
    private CancellationTokenRegistration Arm(TimeSpan timeout, CancellationToken cancellationToken, out CancellationToken token)
    {
        if (!_timeout.TryReset())
        {
            _timeout.Dispose();
            _timeout = new CancellationTokenSource();
        }
        _timeout.CancelAfter(timeout);
        token = _timeout.Token;
        return cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _timeout)
            : default;
    }

    /// <summary>Whether body bytes can be read now without waiting for the network.</summary>
    internal bool HasPendingBytes => _reader.Buffered > 0 || _link.HasPendingBytes;

    /// <summary>Whether this connection can take a request now: reusable, and the server has neither closed it nor
    /// sent anything while it sat idle (a server that hit its idle timeout closes; its FIN or RST makes the socket
    /// readable). Checked when a pooled connection is taken, so a request is not sent into a dead connection.</summary>
    public bool IsOpenAndIdle() => IsReusable && _reader.IsQuiet(_link.Socket);

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
    private UpstreamException? Fail(Exception e, string timedOut, CancellationToken cancellationToken)
    {
        _broken = true;
        _openResponse = null;
        return e switch
        {
            OperationCanceledException when cancellationToken.IsCancellationRequested => null,
            OperationCanceledException => new UpstreamException($"{RemoteEndPoint} {timedOut}", e),
            ProtocolException => new UpstreamException($"{RemoteEndPoint} broke the protocol: {e.Message}", e) { Permanent = true },
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

    internal FileClient Client => _client;

    /// <summary>Body bytes not read yet.</summary>
    public long Remaining { get; internal set; }

    /// <summary>Reads the next body bytes; 0 once the whole body was read. A connection that closes early throws
    /// <see cref="UpstreamException"/>: a body is never silently short.</summary>
    public ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default) =>
        _client.ReadBodyAsync(this, destination, cancellationToken);

    /// <summary>Whether more body bytes are already here, readable without waiting for the network.</summary>
    public bool HasBufferedBytes => Remaining > 0 && _client.HasPendingBytes;

    /// <summary>Waits, holding no buffer, until <see cref="HasBufferedBytes"/> or the body is done.</summary>
    public ValueTask WaitForBytesAsync(CancellationToken cancellationToken = default) =>
        HasBufferedBytes ? ValueTask.CompletedTask : _client.WaitForBodyBytesAsync(this, cancellationToken);

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
