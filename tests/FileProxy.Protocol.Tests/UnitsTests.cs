namespace FileProxy.Protocol.Tests;

public sealed class UnitsTests
{
    [Theory]
    [InlineData("512MiB", 512L * 1024 * 1024)]
    [InlineData("10GiB", 10L * 1024 * 1024 * 1024)]
    [InlineData("1TB", 1_000_000_000_000L)]
    [InlineData("1.5GB", 1_500_000_000L)]
    [InlineData("4096", 4096L)]
    [InlineData("0", 0L)]
    [InlineData("1B", 1L)]
    [InlineData("1k", 1000L)]
    [InlineData("1KB", 1000L)]
    [InlineData("1KiB", 1024L)]
    [InlineData("2 MB", 2_000_000L)]
    [InlineData("7mib", 7L * 1024 * 1024)]
    [InlineData("1TiB", 1L << 40)]
    [InlineData(" 64MiB ", 64L * 1024 * 1024)]
    [InlineData("0.5KiB", 512L)]
    [InlineData("9223372036854775807", long.MaxValue)]
    public void TryParseSize_accepts(string text, long expected)
    {
        Units.TryParseSize(text, out var bytes).Should().BeTrue();

        bytes.Should().Be(expected);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("abc")]
    [InlineData("MiB")]
    [InlineData("-1")]
    [InlineData("-1MiB")]
    [InlineData("+1MiB")]
    [InlineData("1.5.5GB")]
    [InlineData("1,5GB")]
    [InlineData(".5GB")]
    [InlineData("1.GB")]
    [InlineData("10XB")]
    [InlineData("10PB")]
    [InlineData("1e3")]
    [InlineData("1 000")]
    [InlineData("1MiB extra")]
    [InlineData("9223372036854775808")]
    [InlineData("8388608TiB")]
    public void TryParseSize_refuses(string text)
    {
        Units.TryParseSize(text, out var bytes).Should().BeFalse();

        bytes.Should().Be(0);
    }

    [Theory]
    [InlineData("10000000000000000000000000000TB")]
    [InlineData("9999999999999999999999999999KiB")]
    public void TryParseSize_returns_false_instead_of_throwing_when_the_number_overflows(string text)
    {
        var act = () => Units.TryParseSize(text, out _);

        act.Should().NotThrow("a Try method reports bad input by returning false")
            .Which.Should().BeFalse();
    }

    [Theory]
    [InlineData("30s", 30_000L)]
    [InlineData("5m", 300_000L)]
    [InlineData("1h", 3_600_000L)]
    [InlineData("2d", 172_800_000L)]
    [InlineData("250ms", 250L)]
    [InlineData("1.5h", 5_400_000L)]
    [InlineData("0.5s", 500L)]
    [InlineData("10", 10_000L)]
    [InlineData("0", 0L)]
    [InlineData("1 m", 60_000L)]
    [InlineData("2H", 7_200_000L)]
    [InlineData("3MS", 3L)]
    [InlineData(" 120s ", 120_000L)]
    public void TryParseDuration_accepts(string text, long expectedMilliseconds)
    {
        Units.TryParseDuration(text, out var duration).Should().BeTrue();

        duration.Should().Be(TimeSpan.FromMilliseconds(expectedMilliseconds));
    }

    [Theory]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("abc")]
    [InlineData("-1s")]
    [InlineData("1w")]
    [InlineData("1y")]
    [InlineData("1.s")]
    [InlineData("1e3")]
    [InlineData("1h30m")]
    [InlineData("1 h 2 m")]
    [InlineData("99999999999999d")]
    public void TryParseDuration_refuses(string text)
    {
        Units.TryParseDuration(text, out var duration).Should().BeFalse();

        duration.Should().Be(TimeSpan.Zero);
    }

    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(1023L, "1023 B")]
    [InlineData(1024L, "1.00 KiB")]
    [InlineData(1536L * 1024 * 1024, "1.50 GiB")]
    [InlineData(1L << 50, "1.00 PiB")]
    [InlineData(1L << 60, "1024.00 PiB")]
    public void FormatBytes_uses_binary_units(long bytes, string expected)
    {
        Units.FormatBytes(bytes).Should().Be(expected);
    }

    [Theory]
    [InlineData(1500L, "1.500 s")]
    [InlineData(250L, "250.0 ms")]
    [InlineData(0L, "0.0 ms")]
    public void FormatDuration_switches_to_milliseconds_below_a_second(long milliseconds, string expected)
    {
        Units.FormatDuration(TimeSpan.FromMilliseconds(milliseconds)).Should().Be(expected);
    }
}
