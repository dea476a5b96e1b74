using SharpFuzz;

namespace FileProxy.Fuzz;

/// <summary>
/// Fuzz target for the frame decoder and the request handler. Under afl-fuzz (fuzz/run.sh) it runs every input
/// through <see cref="DecoderTarget"/> and <see cref="ServerTarget"/> in one persistent process; an exception that
/// escapes is a crash. <c>FileProxy.Fuzz --replay PATH...</c> runs files or directories of inputs once each
/// without afl-fuzz and exits 1 if any fails (how a crash found is checked after a fix).
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "--replay")
        {
            using var replayServer = ServerTarget.Start();
            return Replay(replayServer, args[1..]);
        }
        // Instrumented code must not run before Fuzzer.Run has mapped afl's coverage memory: the server starts
        // with the first input.
        ServerTarget? server = null;
        Fuzzer.Run(stream =>
        {
            server ??= ServerTarget.Start();
            var input = ReadAll(stream);
            DecoderTarget.Run(input);
            server.Run(input);
        });
        server?.Dispose();
        return 0;
    }

    private static int Replay(ServerTarget server, string[] paths)
    {
        var files = paths.SelectMany(path => Directory.Exists(path)
            ? Directory.EnumerateFiles(path).Where(file => !file.EndsWith("README.txt", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
            : (IEnumerable<string>)[path]).ToList();
        var failed = 0;
        foreach (var file in files)
        {
            var input = File.ReadAllBytes(file);
            try
            {
                DecoderTarget.Run(input);
                server.Run(input);
            }
            catch (Exception e) when (e is FuzzFailure or not OutOfMemoryException)
            {
                failed++;
                Console.Error.WriteLine($"FAIL {file}: {e}");
            }
        }
        Console.WriteLine($"{files.Count} inputs replayed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}

/// <summary>An invariant the fuzz target checks did not hold.</summary>
internal sealed class FuzzFailure(string message) : Exception(message);
