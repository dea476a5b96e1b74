using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>Small helpers to fetch bodies into memory in tests.</summary>
public static class Fetch
{
    public sealed record Result(ResponseHead Head, byte[] Body);

    public static async Task<Result> GetAsync(FileClient client, string name, CancellationToken cancellationToken,
        ulong offset = 0, ulong length = ProtocolLimits.ToEnd)
    {
        await using var response = await client.GetAsync(new GetRequest(name, offset, length), cancellationToken);
        using var body = new MemoryStream();
        await response.CopyToAsync(body, cancellationToken);
        return new Result(response.Head, body.ToArray());
    }

    public static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
