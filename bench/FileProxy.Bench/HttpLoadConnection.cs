using System.Buffers.Text;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace FileProxy.Bench;

/// <summary>
/// One persistent HTTP/1.1 connection of <c>load --http</c>: <c>GET /NAME</c>, one request in flight, a response
/// with Content-Length (what nginx and Varnish send for a cached file). It lets the one load generator measure all
/// three caches of workload c, so that their latencies come from the same process on the same threads.
/// Not HttpClient (which `get` uses): in its place, one handler per connection, the client's own cost made nginx and
/// Varnish look slower than they are (Varnish 37,000-42,000 requests/s against 57,000-61,000; paced at 2,000/s a p50
/// of 0.13-0.15 ms against 0.10; workload c alone, 3 runs each, alternating, 2026-12-01 04:42 UTC), and on two cores
/// that CPU is taken from the cache under test.
/// </summary>
internal sealed class HttpLoadConnection(Socket socket, string host) : ILoadConnection
{
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();
    private static readonly byte[] LengthField = "\r\ncontent-length:"u8.ToArray();
    private static readonly byte[] HitField = "\r\nx-cache-status: hit\r\n"u8.ToArray();

    public static async Task<HttpLoadConnection> ConnectAsync(string host, int port, CancellationToken cancellationToken) =>
        new(await LoadSocket.ConnectAsync(host, port, cancellationToken), host);

    public async ValueTask<LoadResult> GetAsync(string name, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var request = Encoding.ASCII.GetBytes($"GET /{name} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        await socket.SendAsync(request, cancellationToken);
        var filled = 0;
        int headEnd;
        while ((headEnd = buffer.Span[..filled].IndexOf(HeadEnd)) < 0)
        {
            if (filled == buffer.Length)
            {
                throw new InvalidDataException("the response head does not fit in the buffer");
            }
            filled += await LoadSocket.ReceiveSomeAsync(socket, buffer[filled..], cancellationToken);
        }
        var (ok, length, hit) = ParseHead(buffer.Span[..(headEnd + 2)]);
        long remaining = length - (filled - headEnd - HeadEnd.Length);
        while (remaining > 0)
        {
            remaining -= await LoadSocket.ReceiveSomeAsync(socket, buffer[..(int)Math.Min(buffer.Length, remaining)], cancellationToken);
        }
        return new LoadResult(ok && remaining == 0, hit);
    }

    /// <summary>Status 200 or not, the Content-Length, and whether the cache called it a hit (the X-Cache-Status
    /// header bench/conf's nginx and Varnish configurations add), from a head that ends with its last line's CRLF.</summary>
    private static (bool Ok, long Length, bool Hit) ParseHead(ReadOnlySpan<byte> head)
    {
        var ok = head.StartsWith("HTTP/1.1 200 "u8) || head.StartsWith("HTTP/1.0 200 "u8);
        Span<byte> lower = stackalloc byte[head.Length];
        Ascii.ToLower(head, lower, out _);
        var at = lower.IndexOf(LengthField);
        if (at < 0)
        {
            throw new InvalidDataException("the response has no Content-Length");
        }
        var value = lower[(at + LengthField.Length)..].TrimStart(" \t"u8);
        return Utf8Parser.TryParse(value, out long length, out _) ? (ok, length, lower.IndexOf(HitField) >= 0)
            : throw new InvalidDataException("the response's Content-Length is not a number");
    }

    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
