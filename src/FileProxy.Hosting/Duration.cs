using System.Globalization;

namespace FileProxy.Hosting;

/// <summary>
/// A duration option's value: a <see cref="TimeSpan"/> that prints the way it is typed (<c>1m</c>, <c>10s</c>,
/// <c>500ms</c>), so help shows a default the parser accepts back (a TimeSpan prints <c>00:01:00</c>, which it does not).
/// </summary>
public readonly record struct Duration(TimeSpan Value)
{
    public static implicit operator TimeSpan(Duration duration) => duration.Value;

    public TimeSpan ToTimeSpan() => Value;

    /// <summary>The largest unit that states the value exactly: <c>1d</c>, <c>2h</c>, <c>1m</c>, <c>10s</c>, <c>500ms</c>.</summary>
    public override string ToString()
    {
        var milliseconds = (long)Value.TotalMilliseconds;
        if (milliseconds != Value.TotalMilliseconds)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{Value.TotalMilliseconds}ms");
        }
        (long Size, string Unit)[] units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
        foreach (var (size, unit) in units)
        {
            if (milliseconds != 0 && milliseconds % size == 0)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{milliseconds / size}{unit}");
            }
        }
        return milliseconds == 0 ? "0s" : string.Create(CultureInfo.InvariantCulture, $"{milliseconds}ms");
    }
}
