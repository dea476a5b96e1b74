using System.Diagnostics;
using System.Text.RegularExpressions;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.S3;

/// <summary>The real server program with the S3 options: credentials from the environment, the bucket checked before
/// the port opens, and usage errors for options that do not go together.</summary>
[Collection("ceph")]
public sealed partial class S3ServerProgramTests(CephFixture ceph, ITestOutputHelper output)
{
    [SkippableFact]
    public async Task The_program_serves_a_bucket_with_credentials_from_the_environment()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var state = new TempDirectory("fileproxy-s3-state");
        var bucket = await ceph.CreateBucketAsync(deadline.Token);
        var content = Fetch.RandomBytes(100_000, seed: 4);
        await ceph.PutAsync(bucket, "pre/a.bin", content, deadline.Token);
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var server = Start(["--s3-endpoint", ceph.Endpoint.ToString(), "--bucket", bucket, "--s3-prefix", "pre",
            "--s3-digest-index", state.Combine("digests.tsv"), "--port", "0", "--listen", "127.0.0.1"], line =>
        {
            if (ListeningLine().Match(line) is { Success: true } match)
            {
                listening.TrySetResult(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        });
        try
        {
            var port = await listening.Task.WaitAsync(deadline.Token);
            await using var client = await FileClient.ConnectAsync("127.0.0.1", port, cancellationToken: deadline.Token);

            var result = await Fetch.GetAsync(client, "a.bin", deadline.Token);

            result.Head.Status.Should().Be(StatusCode.Ok, result.Head.Message);
            result.Body.Should().Equal(content);
            File.ReadAllText(state.Combine("digests.tsv")).Should().Contain(ContentDigest.Of(content).ToString());
        }
        finally
        {
            server.Kill();
            await server.WaitForExitAsync(CancellationToken.None);
        }
    }

    [SkippableFact]
    public async Task The_program_does_not_start_on_a_missing_bucket_and_says_why()
    {
        Skip.If(ceph.SkipReason is not null, ceph.SkipReason);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var server = Start(["--s3-endpoint", ceph.Endpoint.ToString(), "--bucket", "no-such-bucket", "--port", "0",
            "--listen", "127.0.0.1"], log.Enqueue);

        await server.WaitForExitAsync(deadline.Token);

        server.ExitCode.Should().Be(1);
        string.Join('\n', log).Should().Contain("Cannot start").And.Contain("NoSuchBucket");
    }

    [Theory]
    [InlineData("--bucket", "b")]
    [InlineData("--s3-endpoint", "http://127.0.0.1:9")]
    [InlineData("--s3-endpoint", "ftp://127.0.0.1:9", "--bucket", "b")]
    [InlineData("--root", ".", "--s3-endpoint", "http://127.0.0.1:9", "--bucket", "b")]
    [InlineData("--s3-prefix", "p")]
    public async Task S3_options_that_do_not_go_together_are_a_usage_error(params string[] arguments)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var server = Start(arguments, log.Enqueue);

        await server.WaitForExitAsync(deadline.Token);

        server.ExitCode.Should().Be(2, string.Join('\n', log));
        string.Join('\n', log).Should().Contain("error:");
    }

    private Process Start(string[] arguments, Action<string> onLine)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Join(AppContext.BaseDirectory, "FileProxy.Server.dll"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        if (ceph.SkipReason is null && ceph.Credentials is { } credentials)
        {
            var keys = credentials.GetCredentials();
            start.Environment["AWS_ACCESS_KEY_ID"] = keys.AccessKey;
            start.Environment["AWS_SECRET_ACCESS_KEY"] = keys.SecretKey;
        }
        var process = new Process { StartInfo = start };
        DataReceivedEventHandler forward = (_, line) =>
        {
            if (line.Data is not null)
            {
                onLine(line.Data);
                try
                {
                    output.WriteLine(line.Data);
                }
                catch (InvalidOperationException)
                {
                    // The test already finished.
                }
            }
        };
        process.OutputDataReceived += forward;
        process.ErrorDataReceived += forward;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();
}
