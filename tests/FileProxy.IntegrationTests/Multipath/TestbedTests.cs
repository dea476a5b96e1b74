using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Multipath;

/// <summary>The test network itself: both paths carry a transfer, and a path taken down carries none.</summary>
[Collection(TestbedGroup.Name)]
public sealed class TestbedTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task Each_path_of_the_direct_topology_carries_a_transfer_until_it_is_taken_down()
    {
        await using var testbed = await Testbed.CreateAsync("direct", output);
        var content = Fetch.RandomBytes(1_000_000, seed: 70);
        testbed.Work.Write("root/one.bin", content);
        await testbed.StartServer("srv", "--root", testbed.Work.Combine("root"), "--port", "5010");

        var overPath0 = await testbed.RunClientAsync("one.bin", "--proxy", $"{Testbed.Address(0, 2)}:5010", "-o", "p0.bin");
        var overPath1 = await testbed.RunClientAsync("one.bin", "--proxy", $"{Testbed.Address(1, 2)}:5010", "-o", "p1.bin");
        await testbed.LinkAsync(1, up: false);
        var overDeadPath = await testbed.RunClientAsync("one.bin", "--proxy", $"{Testbed.Address(1, 2)}:5010", "-o", "dead.bin");

        overPath0.ExitCode.Should().Be(0, overPath0.StdErr);
        overPath1.ExitCode.Should().Be(0, overPath1.StdErr);
        File.ReadAllBytes(testbed.Work.Combine("p0.bin")).Should().Equal(content);
        File.ReadAllBytes(testbed.Work.Combine("p1.bin")).Should().Equal(content);
        overDeadPath.ExitCode.Should().NotBe(0, "path 1 is down");
        File.Exists(testbed.Work.Combine("dead.bin")).Should().BeFalse();
    }

    [SkippableFact]
    public async Task The_proxy_topology_reaches_the_server_through_the_proxy_namespace()
    {
        await using var testbed = await Testbed.CreateAsync("proxy", output);
        var content = Fetch.RandomBytes(500_000, seed: 71);
        testbed.Work.Write("root/two.bin", content);
        await testbed.StartServer("srv", "--root", testbed.Work.Combine("root"), "--port", "5010");
        await testbed.StartProxy("pxy", Testbed.Address(2, 2), "5010", "--port", "5000", "--cache-dir", testbed.Work.Combine("cache"));

        var run = await testbed.RunClientAsync("two.bin", "--proxy", $"{Testbed.Address(1, 2)}:5000", "-o", "two.bin");

        run.ExitCode.Should().Be(0, run.StdErr);
        File.ReadAllBytes(testbed.Work.Combine("two.bin")).Should().Equal(content);
    }
}
