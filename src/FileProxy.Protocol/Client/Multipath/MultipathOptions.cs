namespace FileProxy.Protocol.Client.Multipath;

/// <summary>How a download over several addresses of one server uses them.</summary>
public enum MultipathMode
{
    /// <summary>One connection, to the first address.</summary>
    Off,

    /// <summary>One subflow per address; the <see cref="AmpController"/> decides how many carry data.</summary>
    Adaptive,

    /// <summary>One subflow per address, every one carrying data all the time.</summary>
    All,
}

/// <summary>Settings of one multipath transfer (defaults are the documented behaviour; tests shorten some).</summary>
public sealed record MultipathOptions
{
    public MultipathMode Mode { get; init; } = MultipathMode.Adaptive;

    /// <summary>Options of every subflow's connection (timeouts, MPTCP).</summary>
    public FileClientOptions Connection { get; init; } = new();

    /// <summary>Smallest and largest chunk (one ranged GET). A subflow asks for what it moves in about
    /// <see cref="ChunkTime"/>, within these bounds.</summary>
    public int MinChunkBytes { get; init; } = 1024 * 1024;

    public int MaxChunkBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>How long one chunk should take on its subflow: short enough that a parked subflow drains quickly and
    /// that the end of a transfer does not wait long on a slow path, long enough that per-request costs vanish.</summary>
    public TimeSpan ChunkTime { get; init; } = TimeSpan.FromMilliseconds(150);

    /// <summary>Requests outstanding per subflow: the next GET is on the wire while the current body arrives.</summary>
    public int PipelineDepth { get; init; } = 2;

    /// <summary>Files smaller than this go over the best subflow alone.</summary>
    public long SmallFileBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>A subflow with requests outstanding that receives nothing for this long is given up (its chunks go
    /// to the others).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The controller's settings.</summary>
    public AmpSettings Controller { get; init; } = new();
}
