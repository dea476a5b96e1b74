using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace FileProxy.Bench;

/// <summary>
/// Hands out request numbers at fixed times for <c>load --rate</c>: number i at <c>start + i × interval</c>, from a
/// thread of its own that sleeps to each deadline with clock_nanosleep (CLOCK_MONOTONIC, the clock Stopwatch reads on
/// Linux) and a 1 µs timer slack. A connection waiting for its next number is resumed on that thread, so its request is
/// sent at its time, not at the next tick of a millisecond timer (Task.Delay sent all 64 connections' requests in one
/// burst every 3 ms at 20,000 requests/s).
/// </summary>
internal static partial class Pacer
{
    private const int ClockMonotonic = 1;
    private const int TimerAbsolute = 1;
    private const int SetTimerSlack = 29;

    public static ChannelReader<int> Start(long start, double ticksPerRequest, int total)
    {
        var channel = Channel.CreateUnbounded<int>(new UnboundedChannelOptions
        {
            SingleWriter = true,
            AllowSynchronousContinuations = true,
        });
        var thread = new Thread(() =>
        {
            _ = prctl(SetTimerSlack, 1000, 0, 0, 0);
            for (var i = 0; i < total; i++)
            {
                SleepUntil(start + (long)(i * ticksPerRequest));
                channel.Writer.TryWrite(i);
            }
            channel.Writer.Complete();
        })
        {
            IsBackground = true,
            Name = "load pacer",
        };
        thread.Start();
        return channel.Reader;
    }

    private static void SleepUntil(long timestamp)
    {
        if (timestamp <= Stopwatch.GetTimestamp())
        {
            return;
        }
        if (!OperatingSystem.IsLinux())
        {
            Thread.Sleep(TimeSpan.FromSeconds((double)(timestamp - Stopwatch.GetTimestamp()) / Stopwatch.Frequency));
            return;
        }
        var nanoseconds = (long)(timestamp * (1e9 / Stopwatch.Frequency));
        var deadline = new Timespec(nanoseconds / 1_000_000_000, nanoseconds % 1_000_000_000);
        // EINTR (a signal) returns early: the caller's next deadline is later, so at worst one request goes early.
        _ = clock_nanosleep(ClockMonotonic, TimerAbsolute, in deadline, 0);
    }

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct Timespec(long Seconds, long Nanoseconds);

    [LibraryImport("libc")]
    private static partial int clock_nanosleep(int clock, int flags, in Timespec request, nint remain);

    [LibraryImport("libc")]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
