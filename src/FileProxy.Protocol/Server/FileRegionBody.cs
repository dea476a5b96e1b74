namespace FileProxy.Protocol.Server;

/// <summary>A region of an open file, sent with sendfile. Owns the file.</summary>
public sealed class FileRegionBody : IResponseBody
{
    private readonly FileStream _file;
    private readonly long _offset;

    public FileRegionBody(FileStream file, long offset, long length)
    {
        _file = file;
        _offset = offset;
        Length = length;
    }

    public long Length { get; }

    public bool TryCopyTo(Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            return false;
        }
        var target = destination[..(int)Length];
        var done = 0;
        while (done < target.Length)
        {
            var read = RandomAccess.Read(_file.SafeFileHandle, target[done..], _offset + done);
            if (read == 0)
            {
                throw new IOException($"file ended {Length - done} bytes early (changed while being served?)");
            }
            done += read;
        }
        return true;
    }

    public ValueTask<CopyOutcome> SendAsync(IBodySink sink, CancellationToken cancellationToken) =>
        BodyCopy.SendFileAsync(sink, _file, _offset, Length, cancellationToken);

    public ValueTask DisposeAsync() => _file.DisposeAsync();

    /// <summary>Opens a file for a body: shared so that writers, renames and deletes go on around readers.</summary>
    public static FileStream OpenShared(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0, FileOptions.Asynchronous);
}
