using FileProxy.Fuzz;

namespace FileProxy.IntegrationTests.Fuzz;

/// <summary>
/// Every input the fuzzer (fuzz/run.sh) found to break an invariant is kept in fuzz/regressions and replayed here
/// through the same targets: the frame decoder, and the request handler of a real origin server.
/// </summary>
public sealed class FuzzRegressionTests
{
    public static TheoryData<string> Inputs() =>
        [.. Directory.EnumerateFiles(Path.Join(AppContext.BaseDirectory, "fuzz-regressions")).Select(path => Path.GetFileName(path)).Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(Inputs))]
    public void A_fuzz_finding_no_longer_breaks_the_decoder_or_the_server(string name)
    {
        var input = File.ReadAllBytes(Path.Join(AppContext.BaseDirectory, "fuzz-regressions", name));
        using var server = ServerTarget.Start();

        DecoderTarget.Run(input);
        server.Run(input);
    }

    [Fact]
    public void The_regressions_are_there() => Inputs().Count.Should().BeGreaterThan(0, "fuzz/regressions is copied next to the tests");
}
