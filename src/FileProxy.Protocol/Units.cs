using System.Globalization;
using System.Text.RegularExpressions;

namespace FileProxy.Protocol;

/// <summary>Sizes and durations as people write them: <c>512MiB</c>, <c>10GB</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>.</summary>
public static partial class Units
{
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var match = SizePattern().Match(text.Trim());
        if (!match.Success || !decimal.TryParse(match.Groups[1].Value, NumberStyles.Number, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }
        var unit = match.Groups[2].Value.ToUpperInvariant();
        decimal multiplier = unit switch
        {
            "" or "B" => 1m,
            "K" or "KB" => 1e3m,
            "M" or "MB" => 1e6m,
            "G" or "GB" => 1e9m,
            "T" or "TB" => 1e12m,
            "KIB" => 1L << 10,
            "MIB" => 1L << 20,
            "GIB" => 1L << 30,
            "TIB" => 1L << 40,
            _ => -1m,
        };
        if (multiplier < 0 || number > long.MaxValue / multiplier)
        {
            return false;
        }
        bytes = (long)(number * multiplier);
        return true;
    }

    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        var match = DurationPattern().Match(text.Trim());
        if (!match.Success || !double.TryParse(match.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }
        double seconds = match.Groups[2].Value.ToLowerInvariant() switch
        {
            "ms" => number / 1000,
            "" or "s" => number,
            "m" => number * 60,
            "h" => number * 3600,
            "d" => number * 86400,
            _ => -1,
        };
        if (seconds < 0 || seconds > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            return false;
        }
        duration = TimeSpan.FromSeconds(seconds);
        return true;
    }

    /// <summary>Bytes in binary units with three significant digits: "1.50 GiB".</summary>
    public static string FormatBytes(double bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        var unit = 0;
        while (bytes >= 1024 && unit < units.Length - 1)
        {
            bytes /= 1024;
            unit++;
        }
        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes:0} B")
            : string.Create(CultureInfo.InvariantCulture, $"{bytes:0.00} {units[unit]}");
    }

    public static string FormatDuration(TimeSpan duration) =>
        duration.TotalSeconds >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{duration.TotalSeconds:0.000} s")
            : string.Create(CultureInfo.InvariantCulture, $"{duration.TotalMilliseconds:0.0} ms");

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$")]
    private static partial Regex SizePattern();

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d|)$", RegexOptions.IgnoreCase)]
    private static partial Regex DurationPattern();
}
