using System.Globalization;

namespace FileProxy.Client;

/// <summary>A proxy's view of its tier, read back from its STATS counters <c>peer:ID:state</c>,
/// <c>peer:ID:forwarded</c> and <c>peer:ID:down_ms</c>.</summary>
internal sealed record TierView(string Id, long State, long Forwarded, long DownMs)
{
    public string StateName => State switch
    {
        0 => "down",
        1 => "up",
        2 => "self",
        _ => State.ToString(CultureInfo.InvariantCulture),
    };

    public static List<TierView> Parse(IEnumerable<KeyValuePair<string, long>> counters)
    {
        Dictionary<string, Dictionary<string, long>> peers = new(StringComparer.Ordinal);
        foreach (var (key, value) in counters)
        {
            if (!key.StartsWith("peer:", StringComparison.Ordinal) || key.LastIndexOf(':') is var last && last <= 5)
            {
                continue;
            }
            var id = key[5..last];
            if (!peers.TryGetValue(id, out var fields))
            {
                peers[id] = fields = new(StringComparer.Ordinal);
            }
            fields[key[(last + 1)..]] = value;
        }
        return [.. peers.Select(pair => new TierView(pair.Key, pair.Value.GetValueOrDefault("state", -1),
            pair.Value.GetValueOrDefault("forwarded"), pair.Value.GetValueOrDefault("down_ms")))];
    }
}
