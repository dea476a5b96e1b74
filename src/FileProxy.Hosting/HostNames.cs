using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace FileProxy.Hosting;

/// <summary>What may stand where a host is expected: an IP address or a host name (RFC 1123 labels).</summary>
public static partial class HostNames
{
    /// <summary>Whether <paramref name="text"/> is an IP address or a valid host name; <paramref name="error"/> says
    /// why not.</summary>
    public static bool IsValid(string text, out string error)
    {
        error = "";
        if (text.Contains(':', StringComparison.Ordinal))
        {
            if (IPAddress.TryParse(text.Trim('[', ']'), out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6)
            {
                return true;
            }
            error = $"'{text}' is not a host name or IP address";
            return false;
        }
        if (SizeUnit().IsMatch(text))
        {
            error = $"'{text}' is a size unit, not a host (write sizes without a space: 10{text})";
            return false;
        }
        if (Dotted().IsMatch(text))
        {
            if (IPAddress.TryParse(text, out _))
            {
                return true;
            }
            error = $"'{text}' is not a valid IPv4 address";
            return false;
        }
        if (text.Length is > 0 and <= 253 && text.TrimEnd('.').Split('.').All(label => Label().IsMatch(label))
            && !Numeric().IsMatch(text.TrimEnd('.').Split('.')[^1]))
        {
            return true;
        }
        error = $"'{text}' is not a host name or IP address";
        return false;
    }

    [GeneratedRegex(@"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    private static partial Regex Label();

    [GeneratedRegex(@"^[0-9]+$")]
    private static partial Regex Numeric();

    [GeneratedRegex(@"^[0-9]+(\.[0-9]+){3}$")]
    private static partial Regex Dotted();

    [GeneratedRegex(@"^[KMGT]i?B$", RegexOptions.IgnoreCase)]
    private static partial Regex SizeUnit();
}
