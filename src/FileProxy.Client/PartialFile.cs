using System.Buffers;
using System.Globalization;
using System.Text;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Client;

/// <summary>Bytes of a download already on disk when it starts: their length, the version tag they belong to (null
/// when unknown: an existing output of unknown origin), and whether they are the output itself.</summary>
internal sealed record Prefix(long Length, FileMetadata? File, bool IsOutput);

/// <summary>
/// The file a download writes into before it takes the output's name: what one download owns on disk, from the
/// first byte to the rename (or the clean-up). Two kinds:
/// <list type="bullet">
/// <item>A temporary file <c>.NAME.RANDOM.part</c> beside the output, removed on any failure.</item>
/// <item>With --resume, a partial file <c>.NAME.partial</c> beside the output and its sidecar
/// <c>.NAME.partial.meta</c>, which records the name, version tag, size and BLAKE3 the bytes belong to. Both stay
/// after a failure, for the next --resume, unless the bytes are known to be wrong (they failed the digest).</item>
/// </list>
/// The file is held with an exclusive lock (<see cref="FileShare.None"/>, flock(2) on Linux) from its opening to
/// its end, so two resuming clients never write into one partial file.
/// </summary>
internal sealed class PartialFile : IDisposable
{
    private const string MetaHeader = "fileproxy-partial 1";

    private readonly string _finalPath;
    private readonly bool _resumable;
    private SafeFileHandle? _handle;
    private bool _handleIsOutput;
    private bool _committed;

    private PartialFile(string finalPath, string dataPath, bool resumable)
    {
        _finalPath = finalPath;
        DataPath = dataPath;
        _resumable = resumable;
    }

    /// <summary>Whether this is the partial file of --resume, kept after a failure.</summary>
    public bool IsResumable => _resumable;

    /// <summary>Where the bytes go until the rename.</summary>
    public string DataPath { get; }

    /// <summary>The sidecar of a resumable partial file.</summary>
    public string MetaPath => DataPath + ".meta";

    /// <summary>Whether the files stay on disk after a failure (cleared when the bytes are known to be wrong).</summary>
    public bool Keep { get; set; }

    /// <summary>A temporary file with a name of its own, removed unless the download completes.</summary>
    public static PartialFile Temporary(string finalPath) =>
        new(finalPath, Beside(finalPath, $".{Path.GetFileName(finalPath)}.{Guid.NewGuid():N}.part"), resumable: false);

    /// <summary>The partial file of --resume for <paramref name="finalPath"/>; kept after a failure.</summary>
    public static PartialFile Resumable(string finalPath) =>
        new(finalPath, PathFor(finalPath), resumable: true) { Keep = true };

    /// <summary>The name of the partial file --resume keeps for an output.</summary>
    public static string PathFor(string finalPath) => Beside(finalPath, $".{Path.GetFileName(finalPath)}.partial");

    /// <summary>
    /// The bytes a resumable download can start from, locked for this download: the partial file, when its sidecar
    /// says it holds <paramref name="name"/>; else the existing output, when it is a non-empty regular file (moved to
    /// the partial file's name once the server answers with bytes to add). A partial file without a readable sidecar
    /// or of another name is emptied, and <paramref name="notice"/> says so. Null when there is nothing to resume.
    /// </summary>
    public Prefix? FindPrefix(SafeName name, Action<string> notice)
    {
        if (!_resumable)
        {
            return null;
        }
        if (File.Exists(DataPath))
        {
            _handle = Lock(DataPath, FileMode.Open);
            var file = ReadMeta(name, out var why);
            var length = RandomAccess.GetLength(_handle);
            if (file is not null && length <= file.Size)
            {
                return new Prefix(length, file, IsOutput: false);
            }
            notice($"{name}: {Path.GetFileName(DataPath)} {why ?? $"is longer than the file it belongs to ({length} bytes)"}; starting over");
            Restart();
            return null;
        }
        if (File.Exists(_finalPath) && new FileInfo(_finalPath) is { Length: > 0, LinkTarget: null })
        {
            _handle = Lock(_finalPath, FileMode.Open);
            _handleIsOutput = true;
            return new Prefix(RandomAccess.GetLength(_handle), null, IsOutput: true);
        }
        return null;
    }

    /// <summary>Feeds the first <paramref name="length"/> bytes on disk to <paramref name="hash"/>.</summary>
    public async Task HashAsync(long length, ContentHasher hash, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Protocol.Client.BodyCopier.BlockBytes);
        try
        {
            for (long offset = 0; offset < length;)
            {
                var read = await RandomAccess.ReadAsync(_handle!, buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - offset)),
                    offset, cancellationToken);
                if (read == 0)
                {
                    throw new IOException($"{DataPath} ended after {offset} of {length} bytes");
                }
                hash.Append(buffer.AsSpan(0, read));
                offset += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The file to write into, created (or the existing output moved to the partial file's name) on first
    /// use.</summary>
    public SafeFileHandle Open()
    {
        if (_handle is null)
        {
            _handle = _resumable ? Lock(DataPath, FileMode.OpenOrCreate) : Lock(DataPath, FileMode.CreateNew);
            OutputFile.Empty(_handle);
        }
        else if (_handleIsOutput)
        {
            // The lock is on the inode and follows it; from now on the output name is free until the commit.
            File.Move(_finalPath, DataPath, overwrite: true);
            _handleIsOutput = false;
        }
        return _handle;
    }

    /// <summary>Records which file the bytes belong to, before the first of them is written (write a temporary file,
    /// then rename: a sidecar is whole or absent).</summary>
    public void Record(SafeName name, FileMetadata file)
    {
        if (!_resumable)
        {
            return;
        }
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{MetaHeader}\nname {name.Value}\nversion {file.Version}\nsize {file.Size}\nblake3 {file.Digest}\n");
        var temporary = MetaPath + ".new";
        File.WriteAllText(temporary, text, new UTF8Encoding(false));
        File.Move(temporary, MetaPath, overwrite: true);
    }

    /// <summary>Forgets the bytes: a download that starts over writes from byte 0. An existing output that was to be
    /// continued is left as it is (it is replaced only by a verified file).</summary>
    public void Restart()
    {
        if (_handleIsOutput)
        {
            _handle!.Dispose();
            _handle = null;
            _handleIsOutput = false;
        }
        else if (_handle is not null)
        {
            OutputFile.Empty(_handle);
        }
        TryDelete(MetaPath);
    }

    /// <summary>Gives the verified bytes the output's name (nothing to do when they already are the output).</summary>
    public void Commit()
    {
        if (!_handleIsOutput)
        {
            File.Move(DataPath, _finalPath, overwrite: true);
        }
        _committed = true;
        TryDelete(MetaPath);
    }

    public void Dispose()
    {
        _handle?.Dispose();
        if (!_committed && (!Keep || _handleIsOutput))
        {
            if (!_handleIsOutput)
            {
                TryDelete(DataPath);
            }
            TryDelete(MetaPath);
        }
    }

    private static string Beside(string finalPath, string fileName) => Path.Join(Path.GetDirectoryName(finalPath)!, fileName);

    private static SafeFileHandle Lock(string path, FileMode mode)
    {
        try
        {
            return File.OpenHandle(path, mode, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && File.Exists(path))
        {
            throw new IOException($"{Path.GetFileName(path)} is being written by another client", e);
        }
    }

    /// <summary>The sidecar's file, or null with the reason it cannot be used.</summary>
    private FileMetadata? ReadMeta(SafeName name, out string? why)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(MetaPath, Encoding.UTF8);
        }
        catch (FileNotFoundException)
        {
            why = $"has no {Path.GetFileName(MetaPath)} saying which version it holds";
            return null;
        }
        var fields = lines.Skip(1).Select(line => line.Split(' ', 2)).Where(pair => pair.Length == 2)
            .GroupBy(pair => pair[0], StringComparer.Ordinal).ToDictionary(group => group.Key, group => group.First()[1], StringComparer.Ordinal);
        if (lines.FirstOrDefault() != MetaHeader
            || !fields.TryGetValue("name", out var recordedName) || !fields.TryGetValue("version", out var version)
            || !fields.TryGetValue("size", out var sizeText) || !fields.TryGetValue("blake3", out var digestText)
            || !long.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out var size)
            || digestText.Length != ContentDigest.Length * 2 || !digestText.All(char.IsAsciiHexDigit))
        {
            why = $"has an unreadable {Path.GetFileName(MetaPath)}";
            return null;
        }
        if (recordedName != name.Value)
        {
            why = $"holds another file ('{recordedName}')";
            return null;
        }
        why = null;
        return new FileMetadata(size, version, ContentDigest.Parse(digestText));
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Never created (no such directory, not writable): nothing to clean up.
        }
    }
}
