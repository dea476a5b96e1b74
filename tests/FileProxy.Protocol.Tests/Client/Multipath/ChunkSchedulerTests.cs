using FileProxy.Protocol.Client.Multipath;

namespace FileProxy.Protocol.Tests.Client.Multipath;

public sealed class ChunkSchedulerTests
{
    [Fact]
    public void Chunks_are_handed_out_front_to_back_and_the_prefix_advances_only_without_holes()
    {
        var scheduler = Enabled(10, 2);
        scheduler.TryTake(0, 4, out var a).Should().BeTrue();
        scheduler.TryTake(1, 4, out var b).Should().BeTrue();
        scheduler.TryTake(0, 4, out var c).Should().BeTrue();
        (a.Offset, a.Length, b.Offset, b.Length, c.Offset, c.Length).Should().Be((0, 4, 4, 4, 8, 2));

        Write(scheduler, 1, b);
        scheduler.Prefix.Should().Be(0, "the first chunk is still missing");
        Write(scheduler, 0, a);
        scheduler.Prefix.Should().Be(8);
        Write(scheduler, 0, c);
        scheduler.Prefix.Should().Be(10);
        scheduler.Finished.Should().BeTrue();
    }

    [Fact]
    public void A_failed_subflows_chunks_go_to_the_others_first()
    {
        var scheduler = Enabled(12, 2);
        scheduler.TryTake(0, 4, out var a).Should().BeTrue();
        scheduler.TryTake(1, 4, out var b).Should().BeTrue();

        scheduler.GiveBack(1, [b]);

        scheduler.TryTake(1, 4, out _).Should().BeFalse("a failed subflow takes nothing more");
        scheduler.TryTake(0, 4, out var again).Should().BeTrue();
        again.Should().BeSameAs(b);
        _ = a;
    }

    [Fact]
    public void At_the_end_an_idle_subflow_duplicates_the_lowest_unfinished_chunk_and_only_one_copy_is_written()
    {
        var scheduler = Enabled(8, 2);
        scheduler.TryTake(0, 4, out var slow).Should().BeTrue();
        scheduler.TryTake(1, 4, out var fast).Should().BeTrue();
        Write(scheduler, 1, fast);

        scheduler.TryTake(1, 4, out var copy).Should().BeTrue();
        copy.Should().BeSameAs(slow);
        scheduler.TryTake(1, 4, out _).Should().BeFalse("a chunk is asked of two subflows at most");

        scheduler.TryClaim(1, copy).Should().BeTrue();
        scheduler.Written(copy);
        scheduler.TryClaim(0, slow).Should().BeFalse("the slow copy arrived second and is thrown away");
        scheduler.Prefix.Should().Be(8);
    }

    [Fact]
    public void A_parked_subflow_takes_nothing()
    {
        var scheduler = Enabled(8, 2);
        scheduler.SetEnabled(1, false);

        scheduler.TryTake(1, 4, out _).Should().BeFalse();
        scheduler.TryTake(0, 4, out _).Should().BeTrue();
    }

    [Fact]
    public void A_failure_ends_the_transfer_and_wakes_the_waiters()
    {
        var scheduler = Enabled(8, 1);
        var changed = scheduler.Changed;

        scheduler.Fail(new MultipathException("wrong range"));

        changed.IsCompleted.Should().BeTrue();
        scheduler.Finished.Should().BeTrue();
        scheduler.TryTake(0, 4, out _).Should().BeFalse();
    }

    private static ChunkScheduler Enabled(long size, int subflows)
    {
        var scheduler = new ChunkScheduler(size, subflows);
        for (var i = 0; i < subflows; i++)
        {
            scheduler.SetEnabled(i, true);
        }
        return scheduler;
    }

    private static void Write(ChunkScheduler scheduler, int subflow, Chunk chunk)
    {
        scheduler.TryClaim(subflow, chunk).Should().BeTrue();
        scheduler.Written(chunk);
    }
}
