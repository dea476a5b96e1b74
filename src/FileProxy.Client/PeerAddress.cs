using System.Globalization;

namespace FileProxy.Client;

/// <summary>A HOST:PORT pair as written on the command line: <c>127.0.0.1:5000</c>, <c>[::1]:5000</c>, <c>proxy</c>.</summary>
internal readonly record struct PeerAddress(string Host, int Port)
{
    public const int DefaultPort = 5000;

    public static bool TryParse(string text, out PeerAddress address)
    {
        address = default;
        string host;
        var port = DefaultPort;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return false;
            }
            host = text[1..close];
            var rest = text[(close + 1)..];
            if (rest.Length > 0 && (!rest.StartsWith(':') || !TryPort(rest[1..], out port)))
            {
                return false;
            }
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                host = text; // a bare IPv6 address
            }
            else if (colon >= 0)
            {
                host = text[..colon];
                if (!TryPort(text[(colon + 1)..], out port))
                {
                    return false;
                }
            }
            else
            {
                host = text;
            }
        }
        address = new PeerAddress(host, port);
        return host.Length > 0;
    }

    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    private static bool TryPort(string text, out int port) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and <= 65535;
}
