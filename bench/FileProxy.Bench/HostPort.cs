using System.CommandLine;
using System.Globalization;

namespace FileProxy.Bench;

/// <summary>A <c>HOST:PORT</c> pair from the command line (IPv4 or a host name; the benchmark only uses loopback).</summary>
internal readonly record struct HostPort(string Host, int Port)
{
    public static Option<HostPort> Option(string name, string description, HostPort? defaultValue = null)
    {
        var option = new Option<HostPort>(name)
        {
            Description = description,
            CustomParser = result =>
            {
                var text = result.Tokens.Single().Value;
                if (TryParse(text, out var value))
                {
                    return value;
                }
                result.AddError($"'{text}' is not HOST:PORT");
                return default;
            },
        };
        if (defaultValue is { } value)
        {
            option.DefaultValueFactory = _ => value;
        }
        else
        {
            option.Required = true;
        }
        return option;
    }

    public static bool TryParse(string text, out HostPort value)
    {
        value = default;
        var colon = text.LastIndexOf(':');
        if (colon <= 0
            || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is <= 0 or > 65535)
        {
            return false;
        }
        value = new HostPort(text[..colon], port);
        return true;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Host}:{Port}");
}
