using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Multipath;

/// <summary>The test network itself: both paths carry a transfer, a path taken down carries none; and the client
/// says when MPTCP was asked for but the peer lacks it.</summary>
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

    [SkippableFact]
    public async Task An_mptcp_client_of_a_tcp_server_says_so_in_its_result_line_and_in_stat()
    {
        await using var testbed = await Testbed.CreateAsync("direct", output);
        var content = Fetch.RandomBytes(200_000, seed: 75);
        testbed.Work.Write("root/three.bin", content);
        await testbed.StartServer("srv", "--root", testbed.Work.Combine("root"), "--port", "5010");
        var server = $"{Testbed.Address(0, 2)}:5010";

        var get = await testbed.RunClientAsync("three.bin", "--proxy", server, "-o", "three.bin", "--mptcp");
        var stat = await testbed.RunClientAsync("stat", "three.bin", "--proxy", server, "--mptcp");

        get.ExitCode.Should().Be(0, get.StdErr);
        get.StdOut.Should().Contain(", from origin, MPTCP requested, peer fell back to TCP, blake3 verified");
        stat.StdOut.Should().Contain("transport: MPTCP requested, peer fell back to TCP");
        File.ReadAllBytes(testbed.Work.Combine("three.bin")).Should().Equal(content);
    }
}
