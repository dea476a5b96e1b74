namespace FileProxy.Protocol.Client;

public sealed record FileClientOptions
{
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for a response head, and at most between two reads of a body.</summary>
    public TimeSpan ResponseTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Connect with a Linux MPTCP socket (falls back to TCP where the kernel or peer lacks it).</summary>
    public bool Mptcp { get; init; }
}
