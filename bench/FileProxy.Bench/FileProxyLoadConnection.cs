using System.Net.Sockets;
using FileProxy.Protocol.Wire;

namespace FileProxy.Bench;

/// <summary>
/// One persistent connection of <c>load</c> over the FileProxy protocol, as thin as <see cref="HttpLoadConnection"/>
/// is over HTTP: a GET frame out, the response frame parsed with the protocol's own decoder (every check it makes),
/// the body read to its announced length. No timeouts, retries or connection pooling: those belong to
/// <c>FileClient</c> (<c>load --library</c> measures through it), and the generator's own costs land in every latency
/// it measures. Through FileClient, ours' p50 paced at 2,000 requests/s was about 6 µs higher than through this (the
/// pairwise median of 6 and of 8 alternating rounds, docs/BENCHMARKS.md): what HttpClient did to nginx and Varnish
/// before <see cref="HttpLoadConnection"/>.
/// </summary>
internal sealed class FileProxyLoadConnection(Socket socket) : ILoadConnection
{
    private readonly byte[] _request = new byte[WireCodec.MaxRequestFrame];

    public static async Task<FileProxyLoadConnection> ConnectAsync(string host, int port, CancellationToken cancellationToken) =>
        new(await LoadSocket.ConnectAsync(host, port, cancellationToken));

    public async ValueTask<LoadResult> GetAsync(string name, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var length = WireCodec.EncodeRequest(new GetRequest(name), _request);
        await socket.SendAsync(_request.AsMemory(0, length), cancellationToken);
        var filled = 0;
        FrameHeader header;
        while (!FrameHeader.TryRead(buffer.Span[..filled], out header) || filled < ProtocolLimits.FrameHeaderLength + header.PayloadLength)
        {
            if (filled == buffer.Length)
            {
                throw new InvalidDataException("the response frame does not fit in the buffer");
            }
            filled += await LoadSocket.ReceiveSomeAsync(socket, buffer[filled..], cancellationToken);
        }
        var headEnd = ProtocolLimits.FrameHeaderLength + header.PayloadLength;
        var head = WireCodec.DecodeResponse(Opcode.Get, header, buffer.Span[ProtocolLimits.FrameHeaderLength..headEnd]);
        var remaining = head.Length - (filled - headEnd);
        while (remaining > 0)
        {
            remaining -= await LoadSocket.ReceiveSomeAsync(socket, buffer[..(int)Math.Min(buffer.Length, remaining)], cancellationToken);
        }
        // Whole, as HTTP's 200 is: an Ok answer may be a range, so the bytes must be the whole file's.
        var whole = head.IsOk && head.File is { } file && head.Offset == 0 && head.Length == file.Size;
        return new LoadResult(whole && remaining == 0, head.Source is ResponseSource.CacheHit);
    }

    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
