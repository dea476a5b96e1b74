using FileProxy.Protocol.Client.Multipath;

namespace FileProxy.Proxy.Cache;

/// <summary>Several addresses of the origin (the main one first) over which a fill runs one subflow each.</summary>
public sealed record UpstreamMultipath(IReadOnlyList<(string Host, int Port)> Addresses, MultipathOptions Options);
