namespace FileProxy.Protocol.Client.Multipath;

/// <summary>A multipath transfer cannot go on: the addresses disagree about the file, a peer answered a chunk with
/// the wrong range or length, or every path failed. Nothing of the transfer may be used.</summary>
public class MultipathException : Exception
{
    public MultipathException() { }

    public MultipathException(string message) : base(message) { }

    public MultipathException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>A chunk came back with another version (or the file is gone): the file changed during the transfer.
/// Start over from a fresh head, once.</summary>
public sealed class FileChangedException : MultipathException
{
    public FileChangedException() { }

    public FileChangedException(string message) : base(message) { }

    public FileChangedException(string message, Exception innerException) : base(message, innerException) { }
}
