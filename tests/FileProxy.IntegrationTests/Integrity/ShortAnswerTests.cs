using System.Globalization;
using FileProxy.Client;
using FileProxy.IntegrationTests.Infrastructure;
using FileProxy.Protocol;
using FileProxy.Protocol.Client;
using FileProxy.Protocol.Server;
using FileProxy.Protocol.Wire;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Integrity;

/// <summary>A peer that answers a whole-file GET with fewer bytes, and a head that says so, must not pass for a
/// complete answer: whether an answer is whole follows from the request, not from the answer.</summary>
public sealed class ShortAnswerTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("file")]
    [InlineData("-")]
    public async Task The_client_program_fails_on_a_short_answer_and_writes_nothing(string target)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: source => new ShortAnswerSource(source));
        using var downloads = new TempDirectory("fileproxy-out");
        cluster.Root.Write("twenty.bin", "01234567890123456789"u8.ToArray());
        var outputPath = target == "-" ? "-" : downloads.Combine("twenty.bin");

        var run = await ClientProcess.RunAsync(output, ["twenty.bin", "-p", $"127.0.0.1:{cluster.OriginPort.ToString(CultureInfo.InvariantCulture)}", "-o", outputPath], deadline.Token);

        run.ExitCode.Should().Be(ExitCodes.NetworkError);
        run.StandardError.Should().Contain("to a request for 0+the end").And.NotContain("not checked");
        run.StandardOutput.Should().BeEmpty();
        downloads.Files().Should().BeEmpty();
    }

    [Fact]
    public async Task The_proxy_does_not_pass_a_short_upstream_answer_on_as_a_file()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var cluster = await Cluster.StartAsync(output, wrapOrigin: source => new ShortAnswerSource(source));
        cluster.Root.Write("twenty.bin", "01234567890123456789"u8.ToArray());
        await using var client = await cluster.ConnectProxyAsync(deadline.Token);

        var result = await Fetch.GetAsync(client, "twenty.bin", deadline.Token);

        result.Head.IsOk.Should().BeFalse();
        (await cluster.ProxyStatsAsync(deadline.Token))["entries"].Should().Be(0);
    }

    /// <summary>Answers every GET with its first 5 bytes only, saying so in the head.</summary>
    private sealed class ShortAnswerSource(IFileSource inner) : IFileSource
    {
        public string Role => inner.Role;

        public IEnumerable<KeyValuePair<string, long>> Counters => inner.Counters;

        public async ValueTask<SourceResult> GetAsync(SafeName name, GetRequest request, CancellationToken cancellationToken)
        {
            var result = await inner.GetAsync(name, request with { Length = 5 }, cancellationToken);
            return result;
        }

        public ValueTask<ResponseHead> StatAsync(SafeName name, CancellationToken cancellationToken) => inner.StatAsync(name, cancellationToken);

        public ValueTask<ResponseHead> PurgeAsync(SafeName name, CancellationToken cancellationToken) => inner.PurgeAsync(name, cancellationToken);
    }
}
