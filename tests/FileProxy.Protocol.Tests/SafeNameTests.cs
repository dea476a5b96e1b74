using System.Text;
using FileProxy.Protocol.Wire;

namespace FileProxy.Protocol.Tests;

public sealed class SafeNameTests
{
    [Theory]
    [InlineData("file.txt")]
    [InlineData("subdir/a.txt")]
    [InlineData("deep/er/still/file")]
    [InlineData("with space.txt")]
    [InlineData("dir with space/file name.txt")]
    [InlineData("résumé.txt")]
    [InlineData("日本語/ファイル.bin")]
    [InlineData("😀.png")]
    [InlineData("a..b")]
    [InlineData(".hidden")]
    [InlineData("dir/.hidden")]
    [InlineData("..a")]
    [InlineData("a..")]
    [InlineData("...")]
    [InlineData("x")]
    public void TryCreate_accepts(string name)
    {
        SafeName.TryCreate(name, out var safeName, out var error).Should().BeTrue(error);

        safeName!.Value.Should().Be(name);
        error.Should().BeNull();
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("/abs", "relative")]
    [InlineData("/", "relative")]
    [InlineData("..", "'..'")]
    [InlineData("../x", "'..'")]
    [InlineData("a/../b", "'..'")]
    [InlineData("a/..", "'..'")]
    [InlineData("a//b", "empty segment")]
    [InlineData("a/", "empty segment")]
    [InlineData(".", "'.'")]
    [InlineData("./a", "'.'")]
    [InlineData("a/./b", "'.'")]
    [InlineData("a\\b", "backslash")]
    [InlineData("..\\x", "backslash")]
    [InlineData("a\0b", "NUL")]
    [InlineData("\u0001", "control character U+0001")]
    [InlineData("a\tb", "control character U+0009")]
    [InlineData("a\nb", "control character U+000A")]
    [InlineData("a\u007fb", "control character U+007F")]
    [InlineData("a\u0085b", "control character U+0085")]
    public void TryCreate_refuses(string name, string reason)
    {
        SafeName.TryCreate(name, out var safeName, out var error).Should().BeFalse();

        safeName.Should().BeNull();
        error.Should().Contain(reason);
    }

    [Fact]
    public void TryCreate_refuses_null()
    {
        SafeName.TryCreate(null, out _, out var error).Should().BeFalse();

        error.Should().Contain("empty");
    }

    [Theory]
    [InlineData("a", 1024, "")]
    [InlineData("é", 512, "")]
    [InlineData("日", 341, "a")]
    [InlineData("😀", 256, "")]
    [InlineData("a", 1021, "/é")]
    public void TryCreate_accepts_exactly_1024_UTF8_bytes(string repeated, int count, string suffix)
    {
        var name = string.Concat(Enumerable.Repeat(repeated, count)) + suffix;
        Encoding.UTF8.GetByteCount(name).Should().Be(ProtocolLimits.MaxNameBytes);

        SafeName.TryCreate(name, out _, out var error).Should().BeTrue(error);
    }

    [Theory]
    [InlineData("a", ProtocolLimits.MaxNameBytes + 1)]
    [InlineData("é", (ProtocolLimits.MaxNameBytes / 2) + 1)]
    public void TryCreate_refuses_more_than_1024_UTF8_bytes(string character, int repeat)
    {
        var name = string.Concat(Enumerable.Repeat(character, repeat));

        SafeName.TryCreate(name, out _, out var error).Should().BeFalse();

        error.Should().Contain("limit is 1024");
    }

    [Fact]
    public void TryCreate_counts_a_long_name_in_UTF8_bytes_not_characters()
    {
        var name = new string('é', 600);

        SafeName.TryCreate(name, out _, out var error).Should().BeFalse("600 characters are 1200 UTF-8 bytes");

        error.Should().Contain("1200 UTF-8 bytes");
    }

    // Lone surrogates are Facts, not InlineData: xunit serializes theory data through UTF-8,
    // which would turn them into U+FFFD before the test sees them.
    [Fact]
    public void TryCreate_refuses_a_lone_high_surrogate()
    {
        SafeName.TryCreate("a\uD800b", out _, out var error).Should().BeFalse();

        error.Should().Contain("not valid Unicode");
    }

    [Fact]
    public void TryCreate_refuses_a_lone_low_surrogate()
    {
        SafeName.TryCreate("a/\uDC00", out _, out var error).Should().BeFalse();

        error.Should().Contain("not valid Unicode");
    }

    [Fact]
    public void TryCreate_refuses_a_surrogate_pair_in_the_wrong_order()
    {
        SafeName.TryCreate("\uDE00\uD83D", out _, out var error).Should().BeFalse();

        error.Should().Contain("not valid Unicode");
    }

    [Theory]
    [InlineData("a.txt", "a.txt")]
    [InlineData("dir/a.txt", "a.txt")]
    [InlineData("日本語/ファイル.bin", "ファイル.bin")]
    [InlineData("a/b/c/.hidden", ".hidden")]
    public void FileName_is_the_last_segment(string name, string expected)
    {
        SafeName.Create(name).FileName.Should().Be(expected);
    }

    [Theory]
    [InlineData("a.txt")]
    [InlineData("dir/sub/a.txt")]
    public void RelativePath_joins_segments_with_the_platform_separator(string name)
    {
        var expected = Path.Join(name.Split('/'));

        SafeName.Create(name).RelativePath.Should().Be(expected);
    }

    [Fact]
    public void RelativePath_stays_under_the_root_it_is_joined_to()
    {
        var root = Path.GetFullPath(Path.Join(Path.GetTempPath(), "root"));

        var full = Path.GetFullPath(Path.Join(root, SafeName.Create("dir/a..b/.hidden").RelativePath));

        full.Should().StartWith(root + Path.DirectorySeparatorChar);
    }

    [Fact]
    public void Create_throws_ArgumentException_with_the_reason()
    {
        var act = () => SafeName.Create("a/../b");

        act.Should().Throw<ArgumentException>().WithMessage("*'..'*");
    }

    [Fact]
    public void Names_are_equal_only_when_ordinally_equal()
    {
        var name = SafeName.Create("Dir/File.txt");

        name.Should().Be(SafeName.Create("Dir/File.txt"));
        name.GetHashCode().Should().Be(SafeName.Create("Dir/File.txt").GetHashCode());
        name.Should().NotBe(SafeName.Create("dir/file.txt"));
        name.ToString().Should().Be("Dir/File.txt");
    }
}
