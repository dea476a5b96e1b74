using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>A GET on its own connection whose body is read in steps, so a test can act between the first body
/// bytes and the rest.</summary>
public sealed class StreamingGet : IAsyncDisposable
{
    private readonly FileClient _client;
    private readonly GetResponse _response;
    private readonly MemoryStream _body = new();
    private readonly byte[] _buffer = new byte[64 * 1024];

    private StreamingGet(FileClient client, GetResponse response)
    {
        _client = client;
        _response = response;
    }

    public ResponseHead Head => _response.Head;

    /// <summary>Body bytes read so far.</summary>
    public long Received => _body.Length;

    /// <summary>Connects to 127.0.0.1:<paramref name="port"/>, sends the GET and reads the response head.</summary>
    public static async Task<StreamingGet> StartAsync(int port, string name, CancellationToken cancellationToken,
        ulong offset = 0, ulong length = ProtocolLimits.ToEnd)
    {
        var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: cancellationToken);
        try
        {
            var response = await client.GetAsync(new GetRequest(name, offset, length), cancellationToken);
            return new StreamingGet(client, response);
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>Reads the next body bytes (at least one unless the body is over); returns how many.</summary>
    public async Task<int> ReadSomeAsync(CancellationToken cancellationToken)
    {
        var read = await _response.ReadAsync(_buffer, cancellationToken);
        _body.Write(_buffer, 0, read);
        return read;
    }

    /// <summary>Reads the rest of the body and returns all of it (with what earlier reads got).</summary>
    public async Task<byte[]> ReadToEndAsync(CancellationToken cancellationToken)
    {
        while (await ReadSomeAsync(cancellationToken) > 0)
        {
        }
        return _body.ToArray();
    }

    public async ValueTask DisposeAsync()
    {
        await _response.DisposeAsync();
        await _client.DisposeAsync();
        await _body.DisposeAsync();
    }
}
