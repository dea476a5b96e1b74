using System.Collections.Concurrent;

namespace FileProxy.Protocol.Client;

/// <summary>Keeps idle persistent connections to one upstream for reuse.</summary>
public sealed class FileClientPool : IAsyncDisposable
{
    private readonly ConcurrentBag<FileClient> _idle = [];
    private readonly int _maxIdle;
    private int _disposed;

    public FileClientPool(string host, int port, FileClientOptions? options = null, int maxIdle = 64)
    {
        Host = host;
        Port = port;
        Options = options ?? new FileClientOptions();
        _maxIdle = maxIdle;
    }

    public string Host { get; }

    public int Port { get; }

    public FileClientOptions Options { get; }

    /// <summary>Connections idle in the pool now.</summary>
    public int IdleCount => _idle.Count;

    public async Task<FileClient> RentAsync(CancellationToken cancellationToken)
    {
        while (_idle.TryTake(out var client))
        {
            if (client.IsOpenAndIdle())
            {
                return client;
            }
            await client.DisposeAsync(); // broken, or closed by the server while idle (its idle timeout)
        }
        return await ConnectAsync(cancellationToken);
    }

    /// <summary>Opens one connection and leaves it idle in the pool, unless one is idle already, so that the first
    /// request after a start does not wait for a connect (and, with TLS, a handshake). Returns whether an idle
    /// connection is ready; a failure is the caller's to log (the upstream may simply not be up yet).</summary>
    public async Task<bool> WarmAsync(CancellationToken cancellationToken)
    {
        if (!_idle.IsEmpty)
        {
            return true;
        }
        await ReturnAsync(await ConnectAsync(cancellationToken));
        return !_idle.IsEmpty;
    }

    /// <summary>A new connection that goes back to this pool when returned.</summary>
    private async Task<FileClient> ConnectAsync(CancellationToken cancellationToken)
    {
        var fresh = await FileClient.ConnectAsync(Host, Port, Options, cancellationToken);
        fresh.Pool = this;
        return fresh;
    }

    /// <summary>Gives a client back; a broken one, or one past the idle limit, is closed. A client another pool
    /// opened goes back to that pool (a proxy of a tier rents from its peers' pools and returns to its origin's).</summary>
    public async ValueTask ReturnAsync(FileClient client)
    {
        if (client.Pool is { } owner && owner != this)
        {
            await owner.ReturnAsync(client);
            return;
        }
        if (client.IsReusable && _disposed == 0 && _idle.Count < _maxIdle)
        {
            _idle.Add(client);
            return;
        }
        await client.DisposeAsync();
    }

    /// <summary>Runs one request on a pooled connection, retrying once on a fresh connection when a reused one
    /// turns out to have been closed by the upstream while idle.</summary>
    public async Task<T> RunAsync<T>(Func<FileClient, Task<T>> request, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var client = await RentAsync(cancellationToken);
            try
            {
                return await request(client);
            }
            catch (UpstreamException) when (attempt == 0 && !client.IsReusable)
            {
                // Stale idle connection: try once more.
            }
            finally
            {
                await ReturnAsync(client);
            }
        }
    }

    /// <summary>Closes the idle connections (the peer went away: they are likely dead); the next rent connects.</summary>
    public async ValueTask CloseIdleAsync()
    {
        while (_idle.TryTake(out var client))
        {
            await client.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        while (_idle.TryTake(out var client))
        {
            await client.DisposeAsync();
        }
    }
}
