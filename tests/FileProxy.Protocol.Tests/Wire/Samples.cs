using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests.Wire;

/// <summary>Valid messages of every kind, keyed by a readable name so theories list them one per case.</summary>
internal static class Samples
{
    public static readonly ContentDigest Digest = ContentDigest.Of("hello, world"u8);

    public static readonly FileMetadata File = new(1_000_000, "v1-5f3a", Digest);

    public static IReadOnlyDictionary<string, Request> Requests { get; } = new Dictionary<string, Request>
    {
        ["GET with defaults"] = new GetRequest("data.bin"),
        ["GET with range and if-version"] = new GetRequest("dir/data.bin", 4096, 65536, "v1-5f3a"),
        ["GET with non-ASCII name"] = new GetRequest("日本語/ファイル.bin", 1, 2, "é"),
        ["STAT"] = new StatRequest("dir/file.txt"),
        ["STATS"] = new StatsRequest(),
        ["PURGE"] = new PurgeRequest("dir/file.txt"),
        ["AUTH"] = new AuthRequest("s3cret token"),
        ["LIST of the root"] = new ListRequest(),
        ["LIST of a directory after a cursor"] = new ListRequest("dir/sub", "b.bin", 10),
    };

    public static IReadOnlyDictionary<string, (Opcode RequestOpcode, ResponseHead Head)> Responses { get; } =
        new Dictionary<string, (Opcode, ResponseHead)>
        {
            ["GET Ok"] = (Opcode.Get, new ResponseHead(StatusCode.Ok, "")
            {
                File = File, Offset = 4096, Length = 65536, Source = ResponseSource.CacheHit,
            }),
            ["STAT Ok"] = (Opcode.Stat, new ResponseHead(StatusCode.Ok, "") { File = File, Source = ResponseSource.Origin }),
            ["STATS Ok"] = (Opcode.Stats, new ResponseHead(StatusCode.Ok, "proxy")
            {
                Counters = [new("requests", 42), new("bytes_served", 1L << 40)],
            }),
            ["PURGE Ok"] = (Opcode.Purge, new ResponseHead(StatusCode.Ok, "purged")),
            ["AUTH Ok"] = (Opcode.Auth, new ResponseHead(StatusCode.Ok, "authenticated")),
            ["AUTH Unauthorized"] = (Opcode.Auth, ResponseHead.Error(StatusCode.Unauthorized, "wrong token")),
            ["GET NotFound"] = (Opcode.Get, ResponseHead.Error(StatusCode.NotFound, "no such file: données.bin")),
            ["unknown opcode BadRequest"] = ((Opcode)0x42, ResponseHead.Error(StatusCode.BadRequest, "unknown opcode 0x42") with { OnErrorFrame = true }),
            ["LIST Ok, last page"] = (Opcode.List, new ResponseHead(StatusCode.Ok, "")
            {
                Listing = new DirectoryPage([new("a.bin", EntryType.File, 5, "v1-5f3a"), new("sub", EntryType.Directory, 0, "")], ""),
            }),
            ["LIST Ok, more to come"] = (Opcode.List, new ResponseHead(StatusCode.Ok, "")
            {
                Listing = new DirectoryPage([new("日本語.bin", EntryType.File, 1L << 40, "v2")], "日本語.bin"),
            }),
            ["LIST Ok, empty directory"] = (Opcode.List, new ResponseHead(StatusCode.Ok, "") { Listing = new DirectoryPage([], "") }),
            ["LIST NotFound"] = (Opcode.List, ResponseHead.Error(StatusCode.NotFound, "'x' not found")),
        };

    public static TheoryData<string> RequestNames => new(Requests.Keys);

    /// <summary>Requests whose payload has at least one byte.</summary>
    public static TheoryData<string> NonEmptyRequestNames => new(Requests.Where(r => r.Value is not StatsRequest).Select(r => r.Key));

    public static TheoryData<string> ResponseNames => new(Responses.Keys);
}
