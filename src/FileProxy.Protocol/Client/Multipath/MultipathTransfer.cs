using FileProxy.Protocol.Wire;
using Microsoft.Win32.SafeHandles;

namespace FileProxy.Protocol.Client.Multipath;

/// <summary>What the subflows of one transfer share: the file asked for, where its bytes go, the chunk queue.</summary>
internal sealed class MultipathTransfer(string name, FileMetadata file, SafeFileHandle output, ChunkScheduler scheduler,
    MultipathOptions options, bool wholeFileChunk)
{
    private readonly Lock _lock = new();

    public string Name { get; } = name;

    public FileMetadata File { get; } = file;

    public SafeFileHandle Output { get; } = output;

    public ChunkScheduler Scheduler { get; } = scheduler;

    /// <summary>Where the first chunk's bytes came from (a proxy says cache miss, hit…), or null before any.</summary>
    public ResponseSource? Source { get; private set; }

    public void NoteSource(ResponseSource source)
    {
        lock (_lock)
        {
            Source ??= source;
        }
    }

    /// <summary>Bytes the subflow asks for per GET: what it moves in <see cref="MultipathOptions.ChunkTime"/> at its
    /// last measured goodput, between the bounds (a small file goes in one piece).</summary>
    public int ChunkBytesFor(Subflow subflow)
    {
        if (wholeFileChunk)
        {
            return (int)Math.Min(File.Size, int.MaxValue);
        }
        var wanted = subflow.Rate * options.ChunkTime.TotalSeconds;
        return (int)Math.Clamp(wanted, options.MinChunkBytes, options.MaxChunkBytes);
    }
}
