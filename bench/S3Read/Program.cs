// S3Read: the AWS SDK alone against an S3 endpoint, for scripts/measure-s3.sh.
//   S3Read put ENDPOINT BUCKET KEY FILE   create the bucket if needed and upload FILE as KEY
//   S3Read putdir ENDPOINT BUCKET PREFIX DIR   the same for every file under DIR, as PREFIX/PATH (8 at a time)
//   S3Read get ENDPOINT BUCKET KEY [plain] read KEY whole with one GET and discard the bytes; prints bytes, ms, MB/s.
//                                         The GET asks for the whole object as one range, as the S3 origin does: for a
//                                         plain GET ("plain") the SDK checks the body's MD5 against the ETag, which
//                                         takes it to a third of the speed here.
// Credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the client settings are the S3 origin's.
using System.Diagnostics;
using System.Globalization;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

if (args.Length < 4 || args[0] is not ("put" or "putdir" or "get") || (args[0] is "put" or "putdir" && args.Length < 5))
{
    await Console.Error.WriteLineAsync("usage: S3Read put ENDPOINT BUCKET KEY FILE | putdir ENDPOINT BUCKET PREFIX DIR | get ENDPOINT BUCKET KEY [plain]");
    return 2;
}
var (verb, endpoint, bucket, key) = (args[0], args[1], args[2], args[3]);
using var s3 = new AmazonS3Client(new EnvironmentVariablesAWSCredentials(), new AmazonS3Config
{
    ServiceURL = endpoint,
    ForcePathStyle = true,
    AuthenticationRegion = "us-east-1",
    RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
    ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    IgnoreConfiguredEndpointUrls = true,
    Timeout = TimeSpan.FromMinutes(10),
});
if (verb == "putdir")
{
    try
    {
        await s3.PutBucketAsync(new PutBucketRequest { BucketName = bucket });
    }
    catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
    {
    }
    var files = Directory.GetFiles(args[4], "*", SearchOption.AllDirectories);
    var putStarted = Stopwatch.GetTimestamp();
    await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (path, token) =>
        await s3.PutObjectAsync(new PutObjectRequest
        {
            BucketName = bucket,
            Key = $"{key}/{Path.GetRelativePath(args[4], path).Replace('\\', '/')}",
            FilePath = path,
        }, token));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"put {files.Length} files under {key}/ in {Stopwatch.GetElapsedTime(putStarted).TotalSeconds:0.0} s"));
    return 0;
}
if (verb == "put")
{
    try
    {
        await s3.PutBucketAsync(new PutBucketRequest { BucketName = bucket });
    }
    catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
    {
    }
    await s3.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = key, FilePath = args[4] });
    Console.WriteLine($"put {key}: {new FileInfo(args[4]).Length} bytes");
    return 0;
}

// One HEAD first, so that the timed GET pays no connection set-up or first-call costs (the origin and proxy it is
// compared with are running servers).
var size = (await s3.GetObjectMetadataAsync(bucket, key)).ContentLength;
var plain = args.Length > 4 && args[4] == "plain";
var request = new GetObjectRequest { BucketName = bucket, Key = key };
if (!plain)
{
    request.ByteRange = new ByteRange(0, size - 1);
}
var buffer = new byte[256 * 1024];
var started = Stopwatch.GetTimestamp();
long bytes = 0;
using (var response = await s3.GetObjectAsync(request))
{
    int read;
    while ((read = await response.ResponseStream.ReadAsync(buffer)) > 0)
    {
        bytes += read;
    }
}
var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"sdk {(plain ? "plain" : "ranged")} get {key}: {bytes} bytes in {seconds * 1000:0.0} ms, {bytes / seconds / 1e6:0.0} MB/s"));
return 0;
