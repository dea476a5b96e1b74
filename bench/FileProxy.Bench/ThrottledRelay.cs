using System.Buffers;
using System.Net.Sockets;

namespace FileProxy.Bench;

/// <summary>Forwards each accepted connection to the target; see <see cref="RelayCommand"/>.</summary>
internal sealed class ThrottledRelay(HostPort target, long bytesPerSecond)
{
    private const int ChunkBytes = 64 * 1024;

    /// <summary>How far the relay may fall behind its rate and catch up. A 64 KiB chunk at 50 MB/s is 1.3 ms, and a
    /// wait often ends a few ms late on a busy machine: with 2 ms here the relay lost what each late wake-up overshot
    /// and delivered 46-47 MB/s, less the more CPU the cache under test used (bench b cold: 2.27-2.34 s for 100 MiB,
    /// against 2.10 at the rate). 20 ms (1 MB at 50 MB/s) absorbs that and still caps every stretch longer than it:
    /// one client through the relay alone, 100 MiB, 2.22-2.27 s with 2 ms and 2.09-2.12 s with 20 ms, alternating.</summary>
    private static readonly TimeSpan Burst = TimeSpan.FromMilliseconds(20);

    private readonly TokenBucket? _bucket = bytesPerSecond > 0 ? new TokenBucket(bytesPerSecond, Burst) : null;
    private long _connections;
    private long _bytesToOrigin;
    private long _bytesFromOrigin;

    public async Task AcceptAsync(Socket listener, CancellationToken cancellationToken)
    {
        var connections = new List<Task>();
        try
        {
            while (true)
            {
                var client = await listener.AcceptAsync(cancellationToken);
                connections.RemoveAll(task => task.IsCompleted);
                connections.Add(Task.Run(() => ServeAsync(client, cancellationToken), CancellationToken.None));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        await Task.WhenAll(connections);
    }

    /// <summary>Rewrites the stats file every 100 ms while the counts change, and once more when cancelled.</summary>
    public async Task ReportAsync(string path, CancellationToken cancellationToken)
    {
        var written = "";
        while (true)
        {
            var text = JsonLine.Format(w =>
            {
                w.WriteNumber("connections", Interlocked.Read(ref _connections));
                w.WriteNumber("bytes_to_origin", Interlocked.Read(ref _bytesToOrigin));
                w.WriteNumber("bytes_from_origin", Interlocked.Read(ref _bytesFromOrigin));
                w.WriteNumber("rate", bytesPerSecond);
            });
            if (text != written)
            {
                var temporary = path + ".tmp";
                await File.WriteAllTextAsync(temporary, text + "\n", CancellationToken.None);
                File.Move(temporary, path, overwrite: true);
                written = text;
            }
            if (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            await Task.Delay(100, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _connections);
        using var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
        using (client)
        {
            try
            {
                await upstream.ConnectAsync(target.Host, target.Port, cancellationToken);
                client.NoDelay = true;
                upstream.NoDelay = true;
                await Task.WhenAll(
                    PumpAsync(client, upstream, null, towardOrigin: true, cancellationToken),
                    PumpAsync(upstream, client, _bucket, towardOrigin: false, cancellationToken));
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // A reset or shutdown on either side ends the pair; the other side sees its socket close.
            }
        }
    }

    private async Task PumpAsync(Socket from, Socket to, TokenBucket? bucket, bool towardOrigin, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer.AsMemory(0, ChunkBytes), SocketFlags.None, cancellationToken)) > 0)
            {
                if (bucket?.Reserve(read) is { } wait && wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }
                var data = buffer.AsMemory(0, read);
                while (!data.IsEmpty)
                {
                    data = data[await to.SendAsync(data, SocketFlags.None, cancellationToken)..];
                }
                Interlocked.Add(ref towardOrigin ? ref _bytesToOrigin : ref _bytesFromOrigin, read);
            }
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closing both sockets stops the other direction as well.
            from.Dispose();
            to.Dispose();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
