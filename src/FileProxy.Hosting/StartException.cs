namespace FileProxy.Hosting;

/// <summary>A server program cannot start, for a reason its message states in full, and exits with
/// <see cref="ExitCode"/> (documented in the README).</summary>
public sealed class StartException : IOException
{
    public StartException()
    {
    }

    public StartException(string message) : base(message)
    {
    }

    public StartException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public StartException(string message, int exitCode) : base(message) => ExitCode = exitCode;

    public int ExitCode { get; } = CommandLine.CannotStart;
}
