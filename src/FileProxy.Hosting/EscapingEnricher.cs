using System.Globalization;
using System.Text;
using Serilog.Core;
using Serilog.Events;

namespace FileProxy.Hosting;

/// <summary>
/// Escapes control characters in every string a log event carries (names, version tags, messages from peers), so a
/// peer cannot forge log lines with a newline or drive the terminal with ESC: <c>\n</c>, <c>\r</c>, <c>\t</c>,
/// <c>\\</c> and <c>\xNN</c> / <c>\uNNNN</c> for the rest. Text without control characters is left as it is.
/// </summary>
public sealed class EscapingEnricher : ILogEventEnricher
{
    public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
    {
        List<LogEventProperty>? replaced = null;
        foreach (var (name, value) in logEvent.Properties)
        {
            if (value is ScalarValue { Value: string text } && NeedsEscaping(text))
            {
                (replaced ??= []).Add(new LogEventProperty(name, new ScalarValue(Escape(text))));
            }
        }
        foreach (var property in replaced ?? [])
        {
            logEvent.AddOrUpdateProperty(property);
        }
    }

    public static bool NeedsEscaping(string text) => text.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029');

    public static string Escape(string text)
    {
        if (!NeedsEscaping(text))
        {
            return text;
        }
        var escaped = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            escaped.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\\' => "\\\\",
                _ when c < 0x100 && char.IsControl(c) => string.Create(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}"),
                _ when char.IsControl(c) || c is '\u2028' or '\u2029' => string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => c.ToString(),
            });
        }
        return escaped.ToString();
    }
}
