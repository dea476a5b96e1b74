using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using FileProxy.Hosting;
using FileProxy.Protocol.Tier;

namespace FileProxy.Proxy.Tier;

/// <summary>Which entry of the peer list is this proxy: the one <c>--self</c> names, else the one whose port is the
/// listening port and whose host is an address of this machine (loopback, the listening address, or an
/// interface's address; a host name is resolved once at start).</summary>
internal static class TierMembership
{
    public static TierPeer? FindSelf(IReadOnlyList<TierPeer> peers, TierPeer? named, IPEndPoint listening)
    {
        if (named is { } self)
        {
            return peers.Any(peer => peer.Id == self.Id)
                ? self
                : throw new StartException($"--self {self.Id} is not one of the --peer addresses ({string.Join(", ", peers.Select(p => p.Id))})",
                    CommandLine.UsageError);
        }
        var local = LocalAddresses(listening.Address);
        var matches = peers.Where(peer => peer.Port == listening.Port && Addresses(peer.Host).Any(local.Contains)).ToList();
        if (matches.Count > 1)
        {
            // Several local names for one port (127.0.0.1:5000 and localhost:5000): the listening address decides.
            matches = [.. matches.Where(peer => Addresses(peer.Host).Contains(listening.Address))];
        }
        return matches.Count switch
        {
            0 => null,
            1 => matches[0],
            _ => throw new StartException($"several --peer addresses are this proxy ({string.Join(", ", matches.Select(p => p.Id))}); name it with --self",
                CommandLine.UsageError),
        };
    }

    private static HashSet<IPAddress> LocalAddresses(IPAddress listening)
    {
        HashSet<IPAddress> local = [IPAddress.Loopback, IPAddress.IPv6Loopback, listening];
        try
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            {
                foreach (var address in nic.GetIPProperties().UnicastAddresses)
                {
                    local.Add(address.Address);
                }
            }
        }
        catch (NetworkInformationException)
        {
            // Loopback and the listening address still count.
        }
        return local;
    }

    private static IPAddress[] Addresses(string host)
    {
        if (IPAddress.TryParse(host, out var address))
        {
            return [address];
        }
        try
        {
            return Dns.GetHostAddresses(host);
        }
        catch (SocketException)
        {
            return [];
        }
    }
}
