using FileProxy.Protocol.Wire;
using FileProxy.Server;

namespace FileProxy.IntegrationTests.S3;

public sealed class S3VersionTagTests
{
    [Fact]
    public void The_tag_is_the_ETag_and_the_size() =>
        S3Source.VersionTag("34c4c49fcb80826867a4659b8fcc65e4-3", 1_048_576).Should().Be("34c4c49fcb80826867a4659b8fcc65e4-3:1048576");

    [Fact]
    public void An_ETag_too_long_for_the_wire_becomes_a_hash_that_still_tells_versions_apart()
    {
        var longTag = S3Source.VersionTag(new string('a', 200), 5);
        var otherTag = S3Source.VersionTag(new string('a', 199) + "b", 5);

        longTag.Length.Should().BeLessThanOrEqualTo(ProtocolLimits.MaxVersionBytes);
        longTag.Should().StartWith("sha256-").And.NotBe(otherTag);
    }
}
