using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using ByteRange = FileProxy.Protocol.Server.ByteRange;
using FileProxy.Protocol;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using Serilog;

namespace FileProxy.Server;

/// <summary>
/// Serves the objects of an S3 bucket (AWS S3, Ceph RGW, …) under an optional key prefix: name N is object
/// PREFIX + N. The version tag is the object's ETag and size. The BLAKE3 digest the protocol announces is computed
/// once per version by reading the whole object, and kept in a local <see cref="S3DigestIndex"/> that survives
/// restarts; requests for a version being hashed wait for that one read. A body is an S3 GET (ranged for a range)
/// that must match the ETag the digest belongs to: an object replaced in between is answered Busy, never with bytes
/// of another version. Bodies stream through two pooled buffers, so memory does not grow with the object.
/// </summary>
public sealed class S3Source : IFileSource, IAsyncDisposable
{
    /// <summary>The longest key S3 accepts, in UTF-8 bytes.</summary>
    public const int MaxKeyBytes = 1024;

    private readonly AmazonS3Client _s3;
    private readonly S3SourceOptions _options;
    private readonly S3DigestIndex _index;
    private readonly ConcurrentDictionary<string, Lazy<Task<ContentDigest>>> _hashing = new(StringComparer.Ordinal);
    private readonly ILogger _log;
    private long _digestsComputed;
    private long _bytesHashed;
    private long _objectsChanged;
    private int _disposed;

    public S3Source(S3SourceOptions options, ILogger? log = null)
    {
        _options = options;
        _log = (log ?? Log.Logger).ForContext<S3Source>();
        if (options.Prefix.Length > 0 && !SafeName.TryCreate(options.Prefix.TrimEnd('/'), out _, out var prefixError))
        {
            throw new ArgumentException($"S3 prefix '{options.Prefix}': {prefixError}", nameof(options));
        }
        Prefix = options.Prefix.Length == 0 || options.Prefix.EndsWith('/') ? options.Prefix : options.Prefix + "/";
        var config = new AmazonS3Config
        {
            ServiceURL = options.Endpoint.ToString(),
            ForcePathStyle = true,
            AuthenticationRegion = options.Region,
            // The SDK's default (a CRC on every request and response) breaks PUT on Ceph 16.2
            // (XAmzContentSHA256Mismatch); ranges cannot be checked against a whole-object checksum anyway.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            // Only the endpoint given: no AWS_ENDPOINT_URL or profile endpoint may send requests elsewhere.
            IgnoreConfiguredEndpointUrls = true,
            Timeout = options.RequestTimeout,
            ConnectTimeout = options.ConnectTimeout,
            MaxErrorRetry = 2,
            // The SDK's code must never run on a socket engine thread (see the factory).
            HttpClientFactory = new S3HttpClientFactory(options.ConnectTimeout),
        };
        _s3 = new AmazonS3Client(options.Credentials, config);
        _index = S3DigestIndex.Open(options.DigestIndexPath, _log);
    }

    /// <summary>The key prefix, empty or ending in '/'.</summary>
    public string Prefix { get; }

    public string Bucket => _options.Bucket;

    public Uri Endpoint => _options.Endpoint;

    /// <summary>The file that keeps digests across restarts.</summary>
    public string DigestIndexPath => _index.Path;

    public string Role => "server";

    /// <summary>Tests: runs after the digest is known and before the body's GET, to change the object in between.</summary>
    internal Func<SafeName, CancellationToken, Task>? BeforeBodyRead { get; set; }

    public IEnumerable<KeyValuePair<string, long>> Counters =>
    [
        new("digests_computed", Interlocked.Read(ref _digestsComputed)),
        new("bytes_hashed", Interlocked.Read(ref _bytesHashed)),
        new("digests_known", _index.Count),
        new("objects_changed_while_read", Interlocked.Read(ref _objectsChanged)),
    ];

    /// <summary>Checks that the bucket answers with these credentials; says why not otherwise.</summary>
    public async Task<string?> CheckAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket, Prefix = Prefix, MaxKeys = 1 },
                cancellationToken);
            return null;
        }
        catch (AmazonS3Exception e)
        {
            return $"bucket '{Bucket}' at {_options.Endpoint}: {Describe(e)}";
        }
        catch (Exception e) when (e is AmazonServiceException or HttpRequestException or IOException or TaskCanceledException)
        {
            return $"cannot reach {_options.Endpoint}: {e.Message}";
        }
    }

    public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
    {
        var (head, etag) = await HeadAsync(name, cancellationToken);
        if (!head.IsOk)
        {
            return head;
        }
        var metadata = head.File!;
        if (request.IfVersion.Length > 0 && request.IfVersion != metadata.Version)
        {
            return ResponseHead.Error(StatusCode.VersionMismatch,
                $"file changed: version is {metadata.Version}, request asked for {request.IfVersion}");
        }
        if (!ByteRange.TryResolve(request.Offset, request.Length, metadata.Size, out var range))
        {
            return ByteRange.NotSatisfiable(request.Offset, metadata.Size);
        }
        head = head with { Offset = range.Offset, Length = range.Length };
        if (range.Length == 0)
        {
            return head;
        }
        if (BeforeBodyRead is { } hook)
        {
            await hook(name, cancellationToken);
        }
        var key = Prefix + name.Value;
        var get = WholeOrRangeGet(key, etag, range.Offset, range.Length);
        GetObjectResponse response;
        try
        {
            response = await _s3.GetObjectAsync(get, cancellationToken);
        }
        catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.PreconditionFailed or HttpStatusCode.NotFound)
        {
            return Changed(name, etag, "before its body was read");
        }
        catch (Exception e) when (IsStoreFailure(e) && !cancellationToken.IsCancellationRequested)
        {
            return StoreFailed(name, e);
        }
        if (response.ContentLength != range.Length || Unquote(response.ETag) != etag)
        {
            response.Dispose();
            return Changed(name, etag, "between its digest and its body (length or ETag differ)");
        }
        return new SourceResult(head, new S3Body(response, range.Length));
    }

    public async ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken) =>
        (await HeadAsync(name, cancellationToken)).Head;

    /// <summary>
    /// One page of the "directory" <c>PREFIX/DIR/</c>: ListObjectsV2 with delimiter '/', its common prefixes as
    /// directories and its objects as files (size and version tag as GET reports them). Pages go on after the cursor
    /// with StartAfter, so a page can end anywhere. A key that is not a name a GET could take (a directory marker
    /// <c>DIR/</c>, a control character, an empty segment) is left out; so is a common prefix of the same name as an
    /// object (the object is listed; LIST of that name still shows what is under it). A directory with nothing under
    /// it does not exist in S3: NotFound.
    /// </summary>
    public async ValueTask<ResponseHead> ListAsync(SafeName? directory, string cursor, int limit, CancellationToken cancellationToken)
    {
        var label = directory?.Value ?? ".";
        var prefix = directory is null ? Prefix : Prefix + directory.Value + "/";
        var found = new SortedDictionary<string, ListEntry>(NameOrder.Instance);
        var request = new ListObjectsV2Request
        {
            BucketName = Bucket,
            Prefix = prefix,
            Delimiter = "/",
            MaxKeys = Math.Min(limit + 1, 1000),
            StartAfter = cursor.Length > 0 ? prefix + cursor : null,
        };
        var anything = false;
        bool truncated;
        var calls = 0;
        do
        {
            ListObjectsV2Response response;
            try
            {
                response = await _s3.ListObjectsV2Async(request, cancellationToken);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.Forbidden)
            {
                _log.Warning("LIST {Prefix} refused by the object store: {Reason}", prefix, Describe(e));
                return ResponseHead.Error(StatusCode.Forbidden, $"'{label}': access denied by the object store");
            }
            catch (Exception e) when (IsStoreFailure(e) && !cancellationToken.IsCancellationRequested)
            {
                _log.Warning("LIST {Prefix}: the object store failed: {Reason}", prefix, e is AmazonS3Exception s3 ? Describe(s3) : e.Message);
                return ResponseHead.Error(StatusCode.UpstreamUnavailable, $"object store failed: {(e is AmazonS3Exception s ? Describe(s) : e.Message)}");
            }
            calls++;
            foreach (var common in response.CommonPrefixes ?? [])
            {
                anything = true;
                var name = common[prefix.Length..].TrimEnd('/');
                if (Listable(directory, name, cursor))
                {
                    found.TryAdd(name, new ListEntry(name, EntryType.Directory, 0, ""));
                }
            }
            foreach (var item in response.S3Objects ?? [])
            {
                anything = true;
                var name = item.Key[prefix.Length..];
                if (Listable(directory, name, cursor))
                {
                    var size = item.Size ?? 0;
                    found[name] = new ListEntry(name, EntryType.File, size, VersionTag(Unquote(item.ETag), size));
                }
            }
            truncated = response.IsTruncated == true;
            request.ContinuationToken = response.NextContinuationToken;
            // Left-out keys may leave a page short: ask on, a few times, rather than answer an empty page.
        }
        while (truncated && found.Count <= limit && calls < 8);
        if (!anything && directory is not null && cursor.Length == 0)
        {
            return ResponseHead.Error(StatusCode.NotFound, $"'{label}' not found (no objects under it)");
        }
        var entries = found.Values.Take(limit).ToList();
        var more = found.Count > limit || (truncated && entries.Count > 0);
        return new ResponseHead(StatusCode.Ok, "") { Listing = DirectoryPage.Of(entries, more) };
    }

    /// <summary>Whether a key's part under the listed prefix is an entry a GET could take, after the cursor.</summary>
    private static bool Listable(SafeName? directory, string name, string cursor) =>
        SafeName.IsEntryName(name, out _)
        && (cursor.Length == 0 || NameOrder.Instance.Compare(name, cursor) > 0)
        && (directory is null ? 0 : System.Text.Encoding.UTF8.GetByteCount(directory.Value) + 1) + System.Text.Encoding.UTF8.GetByteCount(name)
            <= ProtocolLimits.MaxNameBytes;

    public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ResponseHead.Error(StatusCode.NotSupported, "this is an origin server; it has no cache to purge"));

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _s3.Dispose();
            _index.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>The object's metadata and the ETag its digest belongs to, or an error head.</summary>
    private async ValueTask<(ResponseHead Head, string ETag)> HeadAsync(SafeName name, CancellationToken cancellationToken)
    {
        var key = Prefix + name.Value;
        if (System.Text.Encoding.UTF8.GetByteCount(key) > MaxKeyBytes)
        {
            return (ResponseHead.Error(StatusCode.BadRequest,
                $"'{name}' with the prefix is longer than the {MaxKeyBytes} bytes an S3 key may have"), "");
        }
        for (var attempt = 0; ; attempt++)
        {
            GetObjectMetadataResponse metadata;
            try
            {
                metadata = await _s3.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = Bucket, Key = key },
                    cancellationToken);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return (ResponseHead.Error(StatusCode.NotFound, $"'{name}' not found"), "");
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.Forbidden)
            {
                _log.Warning("HEAD {Key} refused by the object store: {Reason}", key, Describe(e));
                return (ResponseHead.Error(StatusCode.Forbidden, $"'{name}': access denied by the object store"), "");
            }
            catch (Exception e) when (IsStoreFailure(e) && !cancellationToken.IsCancellationRequested)
            {
                return (StoreFailed(name, e), "");
            }
            var etag = Unquote(metadata.ETag);
            var size = metadata.ContentLength;
            var version = VersionTag(etag, size);
            try
            {
                var digest = await DigestAsync(key, etag, size, version, cancellationToken);
                var file = new FileMetadata(size, version, digest);
                return (new ResponseHead(StatusCode.Ok, "") { File = file, Source = ResponseSource.Origin }, etag);
            }
            catch (ObjectChangedException) when (attempt < 2)
            {
                // Replaced while being hashed: hash the new version instead.
            }
            catch (ObjectChangedException)
            {
                return (Changed(name, etag, "while being hashed, three times in a row"), "");
            }
            catch (Exception e) when (IsStoreFailure(e) && !cancellationToken.IsCancellationRequested)
            {
                return (StoreFailed(name, e), "");
            }
        }
    }

    private Task<ContentDigest> DigestAsync(string key, string etag, long size, string version, CancellationToken cancellationToken)
    {
        if (_index.TryGet(IndexKey(key), version, out var known))
        {
            return Task.FromResult(known);
        }
        var job = key + "\n" + version;
        var lazy = _hashing.GetOrAdd(job, _ => new Lazy<Task<ContentDigest>>(() => HashAsync(job, key, etag, size, version)));
        return lazy.Value.WaitAsync(cancellationToken);
    }

    /// <summary>Reads the whole object (that ETag only) and hashes it. Not cancelled by a requester who leaves:
    /// others may be waiting, and the digest is kept either way.</summary>
    private async Task<ContentDigest> HashAsync(string job, string key, string etag, long size, string version)
    {
        await Task.Yield();
        try
        {
            var started = Stopwatch.GetTimestamp();
            using var timeout = new CancellationTokenSource(_options.HashTimeout);
            using var hasher = new ContentHasher();
            long bytes;
            try
            {
                using var response = size == 0 ? null : await _s3.GetObjectAsync(WholeOrRangeGet(key, etag, 0, size), timeout.Token);
                bytes = response is null ? 0 : await S3Body.PumpAsync(response.ResponseStream, size,
                    // Hashed on a pool thread, so the next block is read from the store meanwhile.
                    (chunk, token) => new ValueTask(Task.Run(() => hasher.Append(chunk.Span), token)), timeout.Token);
            }
            catch (AmazonS3Exception e) when (e.StatusCode is HttpStatusCode.PreconditionFailed or HttpStatusCode.NotFound)
            {
                throw new ObjectChangedException();
            }
            if (bytes != size)
            {
                throw new ObjectChangedException();
            }
            var digest = hasher.Finish();
            _index.Add(IndexKey(key), version, digest);
            Interlocked.Increment(ref _digestsComputed);
            Interlocked.Add(ref _bytesHashed, bytes);
            _log.Information("Hashed {Key} ({Bytes} bytes, version {Version}) in {ElapsedMs:0} ms", key, bytes, version,
                Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return digest;
        }
        finally
        {
            _hashing.TryRemove(job, out _);
        }
    }

    /// <summary>A GET of one version's bytes, always as a range, even of the whole object: for a plain GET the SDK
    /// checks the ETag as an MD5 of the body (MD5Stream), which here cost 3.4 s of CPU per GiB and held a 1 GiB read
    /// to 100 MB/s where the same bytes as one range came at 290 MB/s with 0.5 s of CPU. The bytes are checked
    /// end to end with BLAKE3 by the client instead.</summary>
    private GetObjectRequest WholeOrRangeGet(string key, string etag, long offset, long length) => new()
    {
        BucketName = Bucket,
        Key = key,
        EtagToMatch = etag,
        ByteRange = new Amazon.S3.Model.ByteRange(offset, offset + length - 1),
    };

    /// <summary>ETAG:SIZE; a store whose ETags would make it longer than the wire allows (none known: AWS and RGW
    /// give 32 hex digits, plus -PARTS for multipart uploads) gets a SHA-256 of it instead, which stays unique.</summary>
    internal static string VersionTag(string etag, long size)
    {
        var tag = $"{etag}:{size}";
        return tag.Length <= ProtocolLimits.MaxVersionBytes && System.Text.Ascii.IsValid(tag)
            ? tag
            : "sha256-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(tag)));
    }

    private string IndexKey(string key) => Bucket + "/" + key;

    private ResponseHead Changed(SafeName name, string etag, string when)
    {
        Interlocked.Increment(ref _objectsChanged);
        _log.Warning("{Name} changed in the object store {When} (it had ETag {ETag}); answered Busy", name, when, etag);
        return ResponseHead.Error(StatusCode.Busy, $"'{name}' changed in the object store while being read; try again");
    }

    private ResponseHead StoreFailed(SafeName name, Exception e)
    {
        var reason = e is AmazonS3Exception s3 ? Describe(s3) : e.Message;
        _log.Warning("{Name}: the object store failed: {Reason}", name, reason);
        return ResponseHead.Error(StatusCode.UpstreamUnavailable, $"object store failed: {reason}");
    }

    private static bool IsStoreFailure(Exception e) =>
        e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException or OperationCanceledException;

    private static string Describe(AmazonS3Exception e) =>
        $"{(int)e.StatusCode} {e.ErrorCode ?? e.StatusCode.ToString()}{(string.IsNullOrEmpty(e.Message) ? "" : ": " + e.Message)}";

    private static string Unquote(string? etag) => (etag ?? "").Trim('"');

    /// <summary>The object is no longer the version being read.</summary>
    private sealed class ObjectChangedException() : IOException("the object changed while being read");
}
