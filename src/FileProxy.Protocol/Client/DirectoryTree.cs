using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Client;

/// <summary>What a walk of a directory tree may cover at most.</summary>
public sealed record TreeLimits
{
    /// <summary>Levels below the starting directory that are listed (0: its own entries only). A symlink inside the
    /// root may point at one of its ancestors, making the tree endless: this bounds it.</summary>
    public int MaxDepth { get; init; } = 32;

    /// <summary>Most files a walk returns; past it the walk stops and says so.</summary>
    public int MaxFiles { get; init; } = 100_000;

    /// <summary>Most LIST requests a walk sends.</summary>
    public int MaxRequests { get; init; } = 100_000;

    /// <summary>Most directories a walk keeps to list: a listing of endless subdirectory entries (each a few bytes on
    /// the wire, a whole name in memory) must not grow the client without bound.</summary>
    public int MaxDirectories { get; init; } = 100_000;
}

/// <summary>One file a walk found: its whole name (what a GET asks for), size and version tag.</summary>
public sealed record TreeFile(SafeName Name, long Size, string Version);

/// <summary>A walk's outcome: the files found (each directory's files in name order, then its subdirectories'), and
/// what it left out (null: it saw everything). A
/// walk that could not list the starting directory has <see cref="Error"/> set and no files.</summary>
public sealed record TreeWalk(IReadOnlyList<TreeFile> Files, ResponseHead? Error, string? Truncated);

/// <summary>Walks a directory tree through LIST, depth first, one page at a time, on one connection.</summary>
public static class DirectoryTree
{
    /// <summary>Every file under <paramref name="directory"/> (null: the root), within <paramref name="limits"/>. A
    /// subdirectory that cannot be listed (removed meanwhile, no permission) is reported through
    /// <paramref name="skipped"/> and left out; the starting directory's failure is the walk's.</summary>
    public static async Task<TreeWalk> WalkAsync(FileClient client, SafeName? directory, TreeLimits? limits = null,
        Action<string, ResponseHead>? skipped = null, CancellationToken cancellationToken = default)
    {
        limits ??= new TreeLimits();
        var files = new List<TreeFile>();
        var requests = 0;
        var directories = 0;
        string? truncated = null;
        string? tooDeep = null;
        // Depth first, in name order: a stack of directories still to list, each with its depth.
        var pending = new Stack<(SafeName? Directory, int Depth)>();
        pending.Push((directory, 0));
        var first = true;
        while (pending.Count > 0 && truncated is null)
        {
            var (current, depth) = pending.Pop();
            var subdirectories = new List<SafeName>();
            var cursor = "";
            do
            {
                if (++requests > limits.MaxRequests)
                {
                    truncated = $"stopped after {limits.MaxRequests} LIST requests";
                    break;
                }
                var head = await client.ListAsync(current?.Value ?? "", cursor, 0, cancellationToken);
                if (!head.IsOk)
                {
                    if (first)
                    {
                        return new TreeWalk([], head, null);
                    }
                    skipped?.Invoke(current?.Value ?? ".", head);
                    break;
                }
                var page = head.Listing!;
                foreach (var entry in page.Entries)
                {
                    if (!Join(current, entry.Name, out var name))
                    {
                        continue; // too long with its directory: no GET could ask for it
                    }
                    if (entry.Type == EntryType.Directory)
                    {
                        if (depth < limits.MaxDepth && ++directories > limits.MaxDirectories)
                        {
                            truncated = $"stopped after {limits.MaxDirectories} directories";
                            break;
                        }
                        if (depth < limits.MaxDepth)
                        {
                            subdirectories.Add(name);
                        }
                        else
                        {
                            tooDeep ??= $"left out directories deeper than {limits.MaxDepth} levels (the first: {name})";
                        }
                    }
                    else if (files.Count == limits.MaxFiles)
                    {
                        truncated = $"stopped after {limits.MaxFiles} files";
                        break;
                    }
                    else
                    {
                        files.Add(new TreeFile(name, entry.Size, entry.Version));
                    }
                }
                first = false;
                cursor = page.Next;
            }
            while (cursor.Length > 0 && truncated is null);
            for (var i = subdirectories.Count - 1; i >= 0; i--)
            {
                pending.Push((subdirectories[i], depth + 1));
            }
        }
        return new TreeWalk(files, null, truncated ?? tooDeep);
    }

    private static bool Join(SafeName? directory, string entry, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out SafeName? name)
    {
        if (directory is null)
        {
            return SafeName.TryCreate(entry, out name, out _);
        }
        return directory.TryAppend(entry, out name, out _);
    }
}
