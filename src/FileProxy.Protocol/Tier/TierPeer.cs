using System.Globalization;

namespace FileProxy.Protocol.Tier;

/// <summary>
/// One proxy of a tier, as HOST:PORT (<c>10.0.0.5:5000</c>, <c>[::1]:5000</c>, <c>cache-a:5000</c>). Its
/// <see cref="Id"/> is what rendezvous hashing ranks, so every proxy and client must name a peer the same way:
/// the host as written (lowercased; IPv6 in brackets) and the port.
/// </summary>
public readonly record struct TierPeer(string Host, int Port)
{
    /// <summary>The peer's name in the hash: <c>host:port</c>, <c>[v6]:port</c>.</summary>
    public string Id => Host.Contains(':', StringComparison.Ordinal)
        ? string.Create(CultureInfo.InvariantCulture, $"[{Host}]:{Port}")
        : string.Create(CultureInfo.InvariantCulture, $"{Host}:{Port}");

    public override string ToString() => Id;

    /// <summary>Parses HOST:PORT or [IPv6]:PORT; the port is required (a tier spells out every member).</summary>
    public static bool TryParse(string text, out TierPeer peer)
    {
        peer = default;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535)
        {
            return false;
        }
        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
            if (!host.Contains(':', StringComparison.Ordinal))
            {
                return false;
            }
        }
        else if (host.Contains(':', StringComparison.Ordinal) || host.Contains('[', StringComparison.Ordinal))
        {
            return false;
        }
        if (host.Length == 0 || host.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c == ','))
        {
            return false;
        }
        peer = new TierPeer(host.ToLowerInvariant(), port);
        return true;
    }

    /// <summary>Parses a comma-separated list (<c>a:5000,b:5000</c>); false with the offending item otherwise.</summary>
    public static bool TryParseList(string text, out TierPeer[] peers, out string bad)
    {
        var items = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        peers = new TierPeer[items.Length];
        bad = "";
        for (var i = 0; i < items.Length; i++)
        {
            if (!TryParse(items[i], out peers[i]))
            {
                bad = items[i];
                peers = [];
                return false;
            }
        }
        if (peers.Length == 0)
        {
            bad = text;
            return false;
        }
        return true;
    }
}
