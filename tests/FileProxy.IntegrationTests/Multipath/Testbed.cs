using System.Diagnostics;
using System.Globalization;
using System.Text;
using FileProxy.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace FileProxy.IntegrationTests.Multipath;

/// <summary>
/// The multipath test network of <c>scripts/testbed.sh</c> (namespaces PREFIX-cli, PREFIX-srv and, in the proxy
/// topology, PREFIX-pxy, joined by 100 Mbit/s paths through PREFIX-net), with the real programs run inside it as child processes.
/// Where this machine cannot build it (not root, no namespaces, tc or MPTCP), <see cref="CreateAsync"/> throws
/// <see cref="SkipException"/> with the reason, so a [SkippableFact] is reported skipped, never passed; with
/// FILEPROXY_TESTBED_REQUIRED=1 (CI) it fails instead.
/// Addresses: path N joins 198.18.N.1 (the connecting side) and 198.18.N.2; see <see cref="Address"/>.
/// </summary>
public sealed class Testbed : IAsyncDisposable
{
    /// <summary>Set to 1 where the test network must be buildable: a failure to build it fails the test.</summary>
    public const string RequiredVariable = "FILEPROXY_TESTBED_REQUIRED";

    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ScriptDeadline = TimeSpan.FromSeconds(60);

    /// <summary>Long enough for 100 MiB over a 20 Mbit/s path (42 s), bounded all the same.</summary>
    private static readonly TimeSpan ClientDeadline = TimeSpan.FromMinutes(3);

    private readonly ITestOutputHelper? _output;
    private readonly List<TestbedProcess> _processes = [];
    private readonly TempDirectory _work = new("fileproxy-testbed");
    private int _disposed;

    private Testbed(string prefix, string topology, ITestOutputHelper? output)
    {
        Prefix = prefix;
        Topology = topology;
        _output = output;
    }

    /// <summary>Namespace prefix, unique per instance (at most 8 characters).</summary>
    public string Prefix { get; }

    /// <summary>"direct" (cli, srv; paths 0 and 1) or "proxy" (cli, pxy on paths 0 and 1; pxy, srv on 2 and 3).</summary>
    public string Topology { get; }

    /// <summary>A scratch directory (e.g. a server's root, a proxy's cache, the client's output), deleted on dispose.</summary>
    public TempDirectory Work => _work;

    /// <summary>The address of one end of a path: <paramref name="host"/> 1 is the connecting side (client, or the
    /// proxy towards the server), 2 the accepting side.</summary>
    public static string Address(int path, int host) => string.Create(CultureInfo.InvariantCulture, $"198.18.{path}.{host}");

    /// <summary>Path to the script, copied next to the test assembly.</summary>
    public static string ScriptPath => Path.Join(AppContext.BaseDirectory, "testbed.sh");

    /// <summary>Builds the test network, or throws <see cref="SkipException"/> saying why it cannot be built here.</summary>
    public static async Task<Testbed> CreateAsync(string topology = "direct", ITestOutputHelper? output = null)
    {
        if (topology is not ("direct" or "proxy"))
        {
            throw new ArgumentException($"unknown topology '{topology}' (direct or proxy)", nameof(topology));
        }
        if (!OperatingSystem.IsLinux())
        {
            Unavailable("the multipath test network needs Linux network namespaces");
        }
        if (!Environment.IsPrivilegedProcess)
        {
            Unavailable("the multipath test network needs root (network namespaces, veth, tc); run the tests as root");
        }
        var prefix = "fp" + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray().AsSpan(0, 3));
        var up = await RunScriptAsync(["up", prefix, topology], output);
        if (up.ExitCode != 0)
        {
            // The script removes what it made when "up" fails.
            Unavailable($"scripts/testbed.sh up failed (exit {up.ExitCode}): {up.StdErr.Trim()}");
        }
        return new Testbed(prefix, topology, output);
    }

    /// <summary>Starts the origin server (<c>FileProxy.Server.dll ARGS</c>) in namespace <paramref name="ns"/>
    /// ("srv" normally) and waits until its port (<c>--port</c>, default 5010) answers from the namespace in front.</summary>
    public Task<TestbedProcess> StartServer(string ns, params string[] args) =>
        StartProgramAsync(ns, "FileProxy.Server.dll", defaultPort: 5010, args);

    /// <summary>Starts the proxy (<c>FileProxy.Proxy.dll ARGS</c>) in namespace <paramref name="ns"/> ("pxy" normally)
    /// and waits until its port (<c>--port</c>, default 5000; give it with --port, not positionally) answers.</summary>
    public Task<TestbedProcess> StartProxy(string ns, params string[] args) =>
        StartProgramAsync(ns, "FileProxy.Proxy.dll", defaultPort: 5000, args);

    /// <summary>Runs the real client in PREFIX-cli with <see cref="Work"/> as its working directory.</summary>
    public async Task<ClientRun> RunClientAsync(params string[] args)
    {
        var started = Stopwatch.StartNew();
        var result = await RunAsync(["ip", "netns", "exec", $"{Prefix}-cli", DotnetHost, Dll("FileProxy.Client.dll"), .. args],
            "client", _output, _work.Path, ClientDeadline);
        return new ClientRun(result.ExitCode, result.StdOut, result.StdErr, started.Elapsed);
    }

    /// <summary>Runs any command in one of the namespaces (cli, srv, pxy).</summary>
    public Task<CommandResult> ExecAsync(string ns, params string[] command) =>
        RunScriptAsync(["exec", Prefix, ns, .. command], _output);

    /// <summary>On: both of the server's addresses are reached over path 0 (a shared bottleneck), on every hop.</summary>
    public Task SharedAsync(bool on) => CheckedScriptAsync("shared", Prefix, on ? "on" : "off");

    /// <summary>Changes the rate of a path, each way (tc tbf), e.g. "20mbit".</summary>
    public Task RateAsync(int path, string rate) =>
        CheckedScriptAsync("rate", Prefix, path.ToString(CultureInfo.InvariantCulture), rate);

    /// <summary>Takes a path down or brings it up again (both ends).</summary>
    public Task LinkAsync(int path, bool up) =>
        CheckedScriptAsync("link", Prefix, path.ToString(CultureInfo.InvariantCulture), up ? "up" : "down");

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }
        await RunScriptAsync(["down", Prefix], _output);
        _work.Dispose();
    }

    private async Task<TestbedProcess> StartProgramAsync(string ns, string dll, int defaultPort, string[] args)
    {
        var port = defaultPort;
        var portIndex = Array.IndexOf(args, "--port");
        if (portIndex >= 0 && portIndex + 1 < args.Length)
        {
            port = int.Parse(args[portIndex + 1], CultureInfo.InvariantCulture);
        }
        var (front, address) = FrontOf(ns);
        var process = TestbedProcess.Start($"{ns}:{port}",
            ["ip", "netns", "exec", $"{Prefix}-{ns}", DotnetHost, Dll(dll), .. args], _work.Path, _output);
        _processes.Add(process);
        using var deadline = new CancellationTokenSource(StartDeadline);
        await Poll.UntilAsync(async () =>
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{dll} in {Prefix}-{ns} exited before listening:\n{process.Output}");
            }
            // bash's /dev/tcp connects from the namespace in front, over the path the clients use.
            var probe = await ExecAsync(front, "bash", "-c", $"exec 3<>/dev/tcp/{address}/{port}");
            return probe.ExitCode == 0;
        }, $"{dll} in {Prefix}-{ns} answers on {address}:{port}", deadline.Token);
        return process;
    }

    /// <summary>The namespace that connects to <paramref name="ns"/>, and the address it connects to.</summary>
    private (string Front, string Address) FrontOf(string ns) => (Topology, ns) switch
    {
        ("direct", "srv") => ("cli", Address(0, 2)),
        ("proxy", "pxy") => ("cli", Address(0, 2)),
        ("proxy", "srv") => ("pxy", Address(2, 2)),
        _ => throw new ArgumentException($"nothing connects to '{ns}' in the {Topology} topology", nameof(ns)),
    };

    private async Task CheckedScriptAsync(params string[] args)
    {
        var result = await RunScriptAsync(args, _output);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"testbed.sh {string.Join(' ', args)} failed (exit {result.ExitCode}): {result.StdErr}");
        }
    }

    private static void Unavailable(string reason)
    {
        if (Environment.GetEnvironmentVariable(RequiredVariable) == "1")
        {
            throw new InvalidOperationException($"{reason} ({RequiredVariable}=1, so this is a failure)");
        }
        throw new SkipException(reason);
    }

    private static string DotnetHost => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    private static string Dll(string name)
    {
        var dll = Path.Join(AppContext.BaseDirectory, name);
        return File.Exists(dll) ? dll : throw new FileNotFoundException("the program is not next to the test assembly", dll);
    }

    private static Task<CommandResult> RunScriptAsync(string[] args, ITestOutputHelper? output) =>
        RunAsync(["bash", ScriptPath, .. args], "testbed", output, workingDirectory: null, ScriptDeadline);

    private static async Task<CommandResult> RunAsync(string[] command, string label, ITestOutputHelper? output,
        string? workingDirectory, TimeSpan limit)
    {
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null)
        {
            start.WorkingDirectory = workingDirectory;
        }
        foreach (var argument in command.AsSpan(1))
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{string.Join(' ', command)} did not finish within {limit.TotalSeconds} s");
        }
        var result = new CommandResult(process.ExitCode, await stdout, await stderr);
        TestbedProcess.Write(output, label, $"$ {string.Join(' ', command.Skip(1))} -> exit {result.ExitCode}");
        foreach (var line in (result.StdOut + result.StdErr).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            TestbedProcess.Write(output, label, line);
        }
        return result;
    }
}

/// <summary>A finished command: exit code and everything it wrote.</summary>
public sealed record CommandResult(int ExitCode, string StdOut, string StdErr);

/// <summary>A finished client run; <see cref="Elapsed"/> includes the program's start-up (about 0.1-0.3 s).</summary>
public sealed partial record ClientRun(int ExitCode, string StdOut, string StdErr, TimeSpan Elapsed)
{
    /// <summary>The transfer time the client's result line reports ("NAME: N bytes (…) in 1.547 s, …"): from the
    /// request to the verified file, without the program's start-up. Throws when there is no result line.</summary>
    public TimeSpan Transfer
    {
        get
        {
            var match = ResultTime().Match(StdOut + StdErr);
            if (!match.Success)
            {
                throw new InvalidOperationException($"no result line in the client's output:\n{StdOut}{StdErr}");
            }
            var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            return match.Groups[2].Value == "s" ? TimeSpan.FromSeconds(value) : TimeSpan.FromMilliseconds(value);
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"bytes \([^)]*\) in ([0-9.]+) (s|ms), ")]
    private static partial System.Text.RegularExpressions.Regex ResultTime();
}

/// <summary>A program running in a namespace: its output goes to the test output and is kept for assertions.</summary>
public sealed class TestbedProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private int _disposed;

    private TestbedProcess(Process process) => _process = process;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the program wrote so far (standard output and error, interleaved by line).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Waits until the program has written a line containing <paramref name="text"/>.</summary>
    public Task WaitForOutputAsync(string text, CancellationToken cancellationToken) =>
        Poll.UntilAsync(() => Output.Contains(text, StringComparison.Ordinal), $"the output contains '{text}'", cancellationToken);

    internal static TestbedProcess Start(string label, string[] command, string workingDirectory, ITestOutputHelper? output)
    {
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in command.AsSpan(1))
        {
            start.ArgumentList.Add(argument);
        }
        var process = new Process { StartInfo = start };
        var testbedProcess = new TestbedProcess(process);
        DataReceivedEventHandler forward = (_, line) =>
        {
            if (line.Data is not null)
            {
                lock (testbedProcess._output)
                {
                    testbedProcess._output.AppendLine(line.Data);
                }
                Write(output, label, line.Data);
            }
        };
        process.OutputDataReceived += forward;
        process.ErrorDataReceived += forward;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return testbedProcess;
    }

    /// <summary>Kills the program if it still runs.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    internal static void Write(ITestOutputHelper? output, string label, string line)
    {
        try
        {
            output?.WriteLine($"[{label}] {line}");
        }
        catch (InvalidOperationException)
        {
            // The test already finished.
        }
    }
}
