namespace FileProxy.Protocol.Client;

public sealed record FileClientOptions
{
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for a response head once the request is sent (the first byte).</summary>
    public TimeSpan ResponseTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a body may go without a byte arriving.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Connect with a Linux MPTCP socket (falls back to TCP where the kernel or peer lacks it).</summary>
    public bool Mptcp { get; init; }

    /// <summary>Speak TLS, checking the server's certificate against the system's trust store, or against
    /// <see cref="TlsTrust"/> when set.</summary>
    public bool Tls { get; init; }

    /// <summary>Certificates (a private CA, or a server's own self-signed certificate) to trust instead of the
    /// system's store.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2Collection? TlsTrust { get; init; }

    /// <summary>Shared token presented (AUTH) right after connecting; null for none.</summary>
    public string? Token { get; init; }

    /// <summary>Send every GET and STAT with the tier's hop mark (<see cref="Wire.RequestFlags.Forwarded"/>): set on a
    /// proxy's connections to the other peers of its tier, never on a client's.</summary>
    public bool HopMark { get; init; }
}
