using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Tier;
using FileProxy.Protocol.Wire;

namespace FileProxy.Bench;

/// <summary>
/// <c>tier</c>: asks a tier of proxies for every name of a list, in an order shuffled by a seed, each request through
/// a proxy chosen by <c>--pick</c> (random, the name's owner, or a proxy that does not own it), over
/// <c>--connections</c> workers. Every body is checked against the announced BLAKE3 digest and, with
/// <c>--expect-dir</c>, against the digest of the local file it was made from. A request a proxy fails (connection
/// refused, cut) is asked again through another proxy, once per proxy. Prints one JSON line.
/// </summary>
internal static class TierCommand
{
    public static Command Build()
    {
        var tierList = new Option<string>("--tier") { Description = "The proxies, comma-separated, as their --peer list", Required = true };
        var names = new Option<FileInfo>("--names") { Description = "File with one name per line", Required = true };
        var pick = new Option<string>("--pick") { Description = "random, owner or other", DefaultValueFactory = _ => "random" };
        pick.AcceptOnlyFromAmong("random", "owner", "other");
        var connections = new Option<int>("--connections", "-c") { Description = "Concurrent workers, one request at a time each", DefaultValueFactory = _ => 4 };
        var seed = new Option<int>("--seed") { Description = "Shuffle and proxy choice", DefaultValueFactory = _ => 1 };
        var repeat = new Option<int>("--repeat") { Description = "Ask for every name this many times", DefaultValueFactory = _ => 1 };
        var expect = new Option<DirectoryInfo?>("--expect-dir") { Description = "Directory holding the files themselves, to check every body against" };
        var movedBy = new Option<string?>("--moved-by") { Description = "Ask nothing: print the share of the names whose owner changes when this HOST:PORT joins the tier" };
        var ownedBy = new Option<string?>("--owned-by") { Description = "Ask only for the names this HOST:PORT owns" };
        var command = new Command("tier", "Ask a tier of proxies for a list of names; verify every body; one JSON line")
        {
            tierList, names, pick, connections, seed, repeat, expect, movedBy, ownedBy,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (!TierPeer.TryParseList(parse.GetValue(tierList)!, out var peers, out var bad))
            {
                await Console.Error.WriteLineAsync($"error: '{bad}' is not HOST:PORT");
                return 2;
            }
            var hash = new Rendezvous(peers);
            var random = new Random(parse.GetValue(seed));
            var list = (await File.ReadAllLinesAsync(parse.GetValue(names)!.FullName, cancellationToken)).Where(line => line.Length > 0).ToArray();
            if (parse.GetValue(ownedBy) is { } owner)
            {
                list = [.. list.Where(name => hash.Peers[hash.Owner(name)].Id == owner)];
            }
            if (parse.GetValue(movedBy) is { } joining)
            {
                if (!TierPeer.TryParse(joining, out var added))
                {
                    await Console.Error.WriteLineAsync($"error: '{joining}' is not HOST:PORT");
                    return 2;
                }
                var grown = new Rendezvous([.. peers, added]);
                var moved = list.Count(name => hash.Peers[hash.Owner(name)] != grown.Peers[grown.Owner(name)]);
                JsonLine.Write(w =>
                {
                    w.WriteNumber("names", list.Length);
                    w.WriteNumber("peers_before", peers.Length);
                    w.WriteNumber("moved", moved);
                    w.WriteNumber("moved_share", Math.Round(moved / (double)list.Length, 4));
                });
                return 0;
            }
            var asks = Enumerable.Range(0, parse.GetValue(repeat)).SelectMany(_ => list).OrderBy(_ => random.Next()).ToArray();
            var mode = parse.GetValue(pick)!;
            var expectDir = parse.GetValue(expect);
            var expected = new Dictionary<string, ContentDigest>(StringComparer.Ordinal);
            if (expectDir is not null)
            {
                foreach (var name in list)
                {
                    expected[name] = ContentDigest.Of(await File.ReadAllBytesAsync(Path.Join(expectDir.FullName, name), cancellationToken));
                }
            }
            var stableSeed = $"seed{parse.GetValue(seed)}";
            var next = -1;
            long bytes = 0, failedTries = 0, failed = 0, verified = 0;
            var sources = new long[8];
            var latencies = new double[asks.Length];
            var started = Stopwatch.GetTimestamp();
            var workers = Enumerable.Range(0, Math.Max(1, parse.GetValue(connections))).Select(worker => Task.Run(async () =>
            {
                var choice = new Random(parse.GetValue(seed) * 7919 + worker);
                var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
                try
                {
                    int index;
                    while ((index = Interlocked.Increment(ref next)) < asks.Length)
                    {
                        var name = asks[index];
                        var order = new int[hash.Peers.Count];
                        hash.Rank(name, order);
                        var candidates = mode switch
                        {
                            // The same non-owner for a name in every run with this seed, so its hot copy is found again.
                            "other" when order.Length > 1 => [order[1 + (int)(Rendezvous.Score(stableSeed, name) % (ulong)(order.Length - 1))], .. order.Skip(1), order[0]],
                            "owner" or "other" => order,
                            _ => [.. order.OrderBy(_ => choice.Next())],
                        };
                        var askStarted = Stopwatch.GetTimestamp();
                        var done = false;
                        foreach (var peerIndex in candidates.Distinct())
                        {
                            var peer = hash.Peers[peerIndex];
                            try
                            {
                                await using var client = await FileClient.ConnectAsync(peer.Host, peer.Port, cancellationToken: cancellationToken);
                                await using var response = await client.GetAsync(new GetRequest(name), cancellationToken);
                                if (!response.Head.IsOk)
                                {
                                    throw new UpstreamException($"{response.Head.Status}: {response.Head.Message}");
                                }
                                using var hasher = new ContentHasher();
                                int read;
                                while ((read = await response.ReadAsync(buffer, cancellationToken)) > 0)
                                {
                                    hasher.Append(buffer.AsSpan(0, read));
                                    Interlocked.Add(ref bytes, read);
                                }
                                var digest = hasher.Finish();
                                if (digest != response.Head.File!.Digest || (expected.TryGetValue(name, out var want) && digest != want))
                                {
                                    throw new UpstreamException($"{name} from {peer}: digest mismatch");
                                }
                                Interlocked.Increment(ref verified);
                                Interlocked.Increment(ref sources[(int)response.Head.Source & 7]);
                                done = true;
                                break;
                            }
                            catch (UpstreamException e)
                            {
                                Interlocked.Increment(ref failedTries);
                                await Console.Error.WriteLineAsync($"tier: {name} through {peer}: {e.Message}; asking another proxy");
                            }
                        }
                        if (!done)
                        {
                            Interlocked.Increment(ref failed);
                        }
                        latencies[index] = Stopwatch.GetElapsedTime(askStarted).TotalMilliseconds;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }, cancellationToken)).ToArray();
            await Task.WhenAll(workers);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            Array.Sort(latencies);
            JsonLine.Write(w =>
            {
                w.WriteString("pick", mode);
                w.WriteNumber("requests", asks.Length);
                w.WriteNumber("verified", verified);
                w.WriteNumber("failed", failed);
                w.WriteNumber("failed_tries", failedTries);
                w.WriteNumber("bytes", bytes);
                w.WriteNumber("seconds", Math.Round(seconds, 4));
                w.WriteNumber("mib_per_s", Math.Round(bytes / seconds / 1048576, 1));
                w.WriteNumber("p50_ms", Math.Round(latencies.Length == 0 ? 0 : latencies[latencies.Length / 2], 3));
                w.WriteNumber("hits", sources[(int)ResponseSource.CacheHit]);
                w.WriteNumber("misses", sources[(int)ResponseSource.CacheMiss] + sources[(int)ResponseSource.CacheCoalesced]);
                w.WriteNumber("relayed", sources[(int)ResponseSource.PassThrough]);
            });
            return failed == 0 ? 0 : 1;
        });
        return command;
    }
}
