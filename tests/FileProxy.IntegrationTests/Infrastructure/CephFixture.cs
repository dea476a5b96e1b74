using System.Diagnostics;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace FileProxy.IntegrationTests.Infrastructure;

/// <summary>
/// A real single-node Ceph RADOS Gateway for the S3 origin's tests, shared by the "ceph" collection: reuses one that
/// scripts/ceph.sh already runs, or starts one (about 15 s; installing the packages first takes about 20 s more) and
/// stops it again after the run. Where Ceph cannot be installed or started, <see cref="SkipReason"/> says why and the
/// tests skip with that reason. FILEPROXY_CEPH=skip skips them on purpose, FILEPROXY_CEPH_KEEP=1 leaves it running.
/// Test runs in other worktrees may share the same gateway: each holds a shared lock on a file beside its directory
/// while it runs, and the run that started it stops it only when it can take that lock alone.
/// </summary>
public sealed class CephFixture : IAsyncLifetime
{
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(4);
    private readonly string _script = Repository.Combine("scripts", "ceph.sh");
    private bool _startedHere;
    private FileStream? _userLock;

    /// <summary>Null when the gateway answers; otherwise why the tests cannot run.</summary>
    public string? SkipReason { get; private set; }

    public Uri Endpoint { get; private set; } = null!;

    public BasicAWSCredentials Credentials { get; private set; } = null!;

    public AmazonS3Client S3 { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable("FILEPROXY_CEPH") == "skip")
        {
            SkipReason = "FILEPROXY_CEPH=skip";
            return;
        }
        // FileShare.ReadWrite takes a shared flock on Linux, FileShare.None an exclusive one.
        _userLock = new FileStream(UsersFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
        var (statusCode, _) = await RunAsync("status", TimeSpan.FromSeconds(30));
        var (upCode, output) = await RunAsync("up", UpTimeout);
        if (upCode != 0)
        {
            SkipReason = $"Ceph RGW could not be started (scripts/ceph.sh up exited {upCode}): {output.Trim()}";
            return;
        }
        _startedHere = statusCode != 0;
        var env = output.Split('\n')
            .Where(line => line.StartsWith("export ", StringComparison.Ordinal))
            .Select(line => line["export ".Length..].Split('=', 2))
            .ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        Endpoint = new Uri(env["FILEPROXY_S3_ENDPOINT"]);
        Credentials = new BasicAWSCredentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]);
        S3 = new AmazonS3Client(Credentials, new AmazonS3Config
        {
            ServiceURL = Endpoint.ToString(),
            ForcePathStyle = true,
            AuthenticationRegion = "us-east-1",
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            IgnoreConfiguredEndpointUrls = true,
        });
    }

    public async Task DisposeAsync()
    {
        S3?.Dispose();
        if (_userLock is null)
        {
            return;
        }
        await _userLock.DisposeAsync();
        if (!_startedHere || Environment.GetEnvironmentVariable("FILEPROXY_CEPH_KEEP") == "1")
        {
            return;
        }
        try
        {
            using var alone = new FileStream(UsersFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            await RunAsync("down", TimeSpan.FromSeconds(60));
        }
        catch (IOException)
        {
            // Another test run still uses it; the gateway stays up for it.
        }
    }

    private static string UsersFile =>
        (Environment.GetEnvironmentVariable("CEPH_DIR") is { Length: > 0 } dir ? dir.TrimEnd('/') : "/tmp/fileproxy-ceph") + ".users";

    /// <summary>A new bucket with a name no other test uses.</summary>
    public async Task<string> CreateBucketAsync(CancellationToken cancellationToken)
    {
        var bucket = $"fp-test-{Guid.NewGuid():N}"[..24];
        await S3.PutBucketAsync(new PutBucketRequest { BucketName = bucket }, cancellationToken);
        return bucket;
    }

    public Task PutAsync(string bucket, string key, byte[] content, CancellationToken cancellationToken) =>
        S3.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = key, InputStream = new MemoryStream(content) },
            cancellationToken);

    private async Task<(int ExitCode, string Output)> RunAsync(string verb, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(_script, verb) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"scripts/ceph.sh {verb} did not finish within {timeout.TotalSeconds} s");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}

[CollectionDefinition("ceph")]
public sealed class CephTests : ICollectionFixture<CephFixture>;
