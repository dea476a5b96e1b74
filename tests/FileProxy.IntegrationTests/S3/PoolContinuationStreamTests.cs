using System.Threading.Tasks.Sources;
using FileProxy.Server;

namespace FileProxy.IntegrationTests.S3;

/// <summary>
/// The S3 client's connections resume the AWS SDK on the thread pool. With inline socket completions a socket's
/// operation completes on its engine's own thread, and the SDK, resumed there, read the rest of an answer with a
/// blocking read that only that thread could have completed: the native server hung at its first request to RGW. A
/// dedicated thread stands in for the engine's here (it completes the inner read the way the engine does, running the
/// waiting continuation inline).
/// </summary>
public sealed class PoolContinuationStreamTests
{
    [Fact]
    public async Task A_read_completed_on_another_thread_resumes_the_caller_on_the_thread_pool()
    {
        var inner = new ManuallyCompletedStream();
        await using var stream = new PoolContinuationStream(inner);
        var buffer = new byte[16];

        // As on a server, no synchronization context (xunit's would take the continuation to its own threads).
        var reading = Task.Run(() => ResumedOnAsync(stream.ReadAsync(buffer)));
        await inner.Waiting.Task.WaitAsync(TimeSpan.FromSeconds(30)); // a continuation waits on the inner read
        var engine = new Thread(() => inner.Complete(5)) { IsBackground = true, Name = "stand-in socket engine" };
        engine.Start();
        var (read, onPool, threadName) = await reading.WaitAsync(TimeSpan.FromSeconds(30));

        read.Should().Be(5);
        threadName.Should().NotBe("stand-in socket engine");
        onPool.Should().BeTrue();
    }

    [Fact]
    public async Task A_read_that_completes_at_once_passes_straight_through()
    {
        var inner = new ManuallyCompletedStream();
        inner.Complete(3);
        await using var stream = new PoolContinuationStream(inner);

        var read = stream.ReadAsync(new byte[16]);

        read.IsCompletedSuccessfully.Should().BeTrue();
        (await read).Should().Be(3);
    }

    private static async Task<(int Read, bool OnPool, string? ThreadName)> ResumedOnAsync(ValueTask<int> read)
    {
        var bytes = await read.ConfigureAwait(false);
        return (bytes, Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name);
    }

    /// <summary>A stream whose one read completes when the test says so, on the thread that says so, running its
    /// continuation inline there (as a socket engine does).</summary>
    private sealed class ManuallyCompletedStream : Stream, IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core; // RunContinuationsAsynchronously = false: inline, like the engine

        public TaskCompletionSource Waiting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Complete(int bytes) => _core.SetResult(bytes);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            new(this, _core.Version);

        public int GetResult(short token) => _core.GetResult(token);
        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);
        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        {
            _core.OnCompleted(continuation, state, token, flags);
            Waiting.TrySetResult();
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
