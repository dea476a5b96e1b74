using System.CommandLine;
using System.Net;
using FileProxy.Hosting;
using FileProxy.Protocol.Server;
using FileProxy.Server;
using Serilog;

var root = new Option<DirectoryInfo?>("--root") { Description = "Directory whose files are served (default: the current directory)", HelpName = "dir" };
var s3Endpoint = new Option<Uri>("--s3-endpoint")
{
    Description = "Serve an S3 bucket instead of a directory: the object store's URL (e.g. http://127.0.0.1:7480) (default: none)",
    CustomParser = result =>
    {
        var text = result.Tokens.Single().Value;
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
        {
            return uri;
        }
        result.AddError($"'{text}' is not an http:// or https:// URL");
        return null;
    },
};
var bucket = new Option<string>("--bucket") { Description = "The bucket to serve (with --s3-endpoint) (default: none)" };
var s3Prefix = new Option<string>("--s3-prefix")
{
    Description = "Serve only the objects under this key prefix; name N is object PREFIX/N",
    DefaultValueFactory = _ => "",
};
var s3DigestIndex = new Option<FileInfo>("--s3-digest-index")
{
    Description = "File that keeps the objects' digests across restarts",
    DefaultValueFactory = _ => new FileInfo("fileproxy-s3-digests.tsv"),
};
var s3Region = new Option<string>("--s3-region")
{
    Description = "Region for request signatures (any for Ceph RGW)",
    DefaultValueFactory = _ => "us-east-1",
};
var port = CommandLine.PortOption("--port", "TCP port to listen on", OriginServer.DefaultPort);
var listening = new ListeningOptions();
var logLevel = CommandLine.LogLevelOption();

var command = new RootCommand("FileProxy origin server: serves the files under a directory, or the objects of an S3 bucket, "
    + "over the FileProxy protocol.")
{
    root, s3Endpoint, bucket, s3Prefix, s3DigestIndex, s3Region, port, logLevel,
};
listening.AddTo(command);
command.Validators.Add(result =>
{
    var s3 = result.GetResult(s3Endpoint) is not null;
    if (s3 && result.GetResult(root) is not null)
    {
        result.AddError("--root and --s3-endpoint exclude each other: serve a directory or a bucket");
    }
    if (s3 != (result.GetResult(bucket) is not null))
    {
        result.AddError("--s3-endpoint and --bucket go together");
    }
    foreach (var option in new Option[] { s3Prefix, s3DigestIndex, s3Region })
    {
        if (!s3 && result.GetResult(option) is { Implicit: false })
        {
            result.AddError($"{option.Name} needs --s3-endpoint and --bucket");
        }
    }
});
command.SetAction(async (parse, cancellationToken) =>
{
    ProtocolServerOptions options;
    try
    {
        options = listening.Create(parse, parse.GetValue(port));
    }
    catch (IOException e)
    {
        CommandLine.ConfigureLogging(parse.GetValue(logLevel));
        Log.Fatal("Cannot start: {Reason}", e.Message);
        await Log.CloseAndFlushAsync();
        return 1;
    }
    if (parse.GetValue(s3Endpoint) is not { } endpoint)
    {
        return await CommandLine.RunServerAsync(parse.GetValue(logLevel),
            () => (OriginServer.Create((parse.GetValue(root) ?? new DirectoryInfo(Directory.GetCurrentDirectory())).FullName, options), null), cancellationToken);
    }

    // The bucket is checked before the port opens, so a wrong endpoint, bucket or key ends the start with a reason.
    CommandLine.ConfigureLogging(parse.GetValue(logLevel));
    if (S3Credentials.Find(out var whereLooked) is not { } credentials)
    {
        Log.Fatal("Cannot start: no S3 credentials found (looked in {WhereLooked})", whereLooked);
        await Log.CloseAndFlushAsync();
        return 1;
    }
    S3Source source;
    try
    {
        source = new S3Source(new S3SourceOptions
        {
            Endpoint = endpoint,
            Bucket = parse.GetValue(bucket)!,
            Prefix = parse.GetValue(s3Prefix)!,
            Credentials = credentials,
            DigestIndexPath = parse.GetValue(s3DigestIndex)!.FullName,
            Region = parse.GetValue(s3Region)!,
        });
    }
    catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
    {
        Log.Fatal("Cannot start: {Reason}", e.Message);
        await Log.CloseAndFlushAsync();
        return 1;
    }
    if (await source.CheckAsync(cancellationToken) is { } problem)
    {
        Log.Fatal("Cannot start: {Reason}", problem);
        await source.DisposeAsync();
        await Log.CloseAndFlushAsync();
        return 1;
    }
    return await CommandLine.RunServerAsync(parse.GetValue(logLevel),
        () => (OriginServer.Create(source, options), source), cancellationToken);
});
return await CommandLine.RunAsync(command, args);
