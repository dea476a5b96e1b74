using System.Text.Json;

namespace FileProxy.Bench;

/// <summary>Writes one compact JSON object per line on standard output, the format bench/run.sh collects.</summary>
internal static class JsonLine
{
    private static readonly Lock ConsoleLock = new();

    public static void Write(Action<Utf8JsonWriter> body)
    {
        var line = Format(body);
        lock (ConsoleLock)
        {
            Console.Out.WriteLine(line);
        }
    }

    public static string Format(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
