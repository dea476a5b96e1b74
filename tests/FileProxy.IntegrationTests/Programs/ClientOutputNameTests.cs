using System.Globalization;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Programs;

/// <summary>Where the built client writes when no <c>-o</c> is given.</summary>
public sealed class ClientOutputNameTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_range_without_an_output_name_never_replaces_the_whole_file()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var cluster = await Cluster.StartAsync(output);
        var content = Fetch.RandomBytes(10_000, seed: 50);
        cluster.Root.Write("dir/whole.bin", content);
        using var work = new TempDirectory("fileproxy-out");
        var proxy = $"127.0.0.1:{cluster.ProxyPort.ToString(CultureInfo.InvariantCulture)}";

        var whole = await RunClientAsync(work.Path, deadline.Token, "dir/whole.bin", "--proxy", proxy);
        var range = await RunClientAsync(work.Path, deadline.Token, "dir/whole.bin", "--proxy", proxy, "--offset", "10", "--length", "100");
        var tail = await RunClientAsync(work.Path, deadline.Token, "dir/whole.bin", "--proxy", proxy, "--offset", "9000");

        (whole, range, tail).Should().Be((0, 0, 0));
        File.ReadAllBytes(work.Combine("whole.bin")).Should().Equal(content, "the complete copy stays as it was");
        File.ReadAllBytes(work.Combine("whole.bin.range-10-100")).Should().Equal(content[10..110]);
        File.ReadAllBytes(work.Combine("whole.bin.range-9000-end")).Should().Equal(content[9000..]);
        work.Files().Should().BeEquivalentTo("whole.bin", "whole.bin.range-10-100", "whole.bin.range-9000-end");
    }

    private async Task<int> RunClientAsync(string workingDirectory, CancellationToken cancellationToken, params string[] arguments)
    {
        await using var client = ChildProgram.Start("Client", output, arguments, workingDirectory);
        return await client.WaitForExitAsync(cancellationToken);
    }
}
