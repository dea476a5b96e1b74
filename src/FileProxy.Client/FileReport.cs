using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace FileProxy.Client;

/// <summary>One file's outcome as --json prints it: one object per line on standard output.</summary>
/// <param name="Name">The name as asked for.</param>
/// <param name="Output">Where the bytes went (a path, or "-" for standard output); null when nothing was written.</param>
/// <param name="Bytes">Bytes written.</param>
/// <param name="Seconds">Time from asking to the last byte.</param>
/// <param name="Source">Where the answer came from: origin, cache_hit, cache_miss, cache_coalesced, pass_through,
/// stale_hit; null when there was no answer.</param>
/// <param name="Digest">The BLAKE3 the server announced (hex); null when there was no answer.</param>
/// <param name="Verified">The bytes written hash to <paramref name="Digest"/> (false for a range, which cannot be
/// checked, and for a failure).</param>
/// <param name="Attempts">Tries it took: 1, or more when a connection failed and the client retried.</param>
/// <param name="Resumed">Bytes that were already on disk and were kept (--resume); 0 otherwise.</param>
/// <param name="ExitCode">The exit code this file alone would give (README: exit codes of the client).</param>
/// <param name="Error">Why it failed; null on success.</param>
internal sealed record FileReport(string Name, string? Output, long Bytes, double Seconds, string? Source, string? Digest,
    bool Verified, int Attempts, long Resumed, int ExitCode, string? Error);

/// <summary>Serialization of <see cref="FileReport"/> without reflection (the client is published NativeAOT).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(FileReport))]
internal sealed partial class ClientJsonContext : JsonSerializerContext
{
    /// <summary>Names and messages as they are (a quote stays a quote): the objects go to scripts, never into HTML.
    /// Control characters are still escaped.</summary>
    public static ClientJsonContext Plain { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
