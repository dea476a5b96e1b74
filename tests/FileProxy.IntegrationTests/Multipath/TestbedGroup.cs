namespace FileProxy.IntegrationTests.Multipath;

/// <summary>
/// Every test that runs in the multipath test network: they measure throughput, so they run one at a time and
/// never beside each other (other collections may still run in parallel with them).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TestbedGroup
{
    public const string Name = "Testbed";
}
