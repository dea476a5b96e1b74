using FileProxy.Hosting;
using FileProxy.Protocol.Wire;
using Spectre.Console;

namespace FileProxy.Client;

/// <summary>
/// One progress bar per file in flight on standard error, which must be a terminal (<see cref="ClientOutput"/>
/// decides): name and cache result, bar, percentage, bytes, rate and time left. A finished file's bar gives way to
/// its result line, printed above the bars. Only this class touches Spectre.Console, so a run whose standard error
/// is no terminal (or with --quiet or --json) never loads or initializes any of it.
/// </summary>
internal sealed class TerminalProgress : IAsyncDisposable
{
    private readonly IAnsiConsole _console;
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _running;
    private ProgressContext? _context;
    private int _disposed;

    private TerminalProgress()
    {
        // Nothing is detected, all is said: CommandLine.RunAsync removed TERM (and with it any terminfo), so
        // Spectre's detection would find no ANSI support on the very terminal we checked; and its default
        // enrichers turn interaction off when they see a CI's variables, although standard error is a terminal.
        _console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes,
            ColorSystem = ColorSystemSupport.Standard,
            Interactive = InteractionSupport.Yes,
            Out = new AnsiConsoleOutput(Console.Error),
            Enrichment = new ProfileEnrichment { UseDefaultEnrichers = false },
        });
        var progress = _console.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(
                new TaskDescriptionColumn { Alignment = Justify.Left },
                new ProgressBarColumn(),
                new PercentageColumn(),
                new DownloadedColumn(),
                new TransferSpeedColumn(),
                new RemainingTimeColumn());
        // The action runs at once, up to its first await (Spectre takes its exclusivity lock, free here, and calls
        // it): _context is set when StartAsync returns.
        _running = progress.StartAsync(async context =>
        {
            _context = context;
            await _finished.Task;
        });
    }

    public static TerminalProgress Start() => new();

    /// <summary>A bar for one file, empty until its answer arrives.</summary>
    public IDownloadProgress Add(string name)
    {
        var task = _context!.AddTask(Markup.Escape(EscapingEnricher.Escape(name)), autoStart: true);
        task.IsIndeterminate = true;
        return new Bar(task, name);
    }

    /// <summary>Prints a line above the bars (or, once they are gone, after them).</summary>
    public void WriteLine(string line) => _console.WriteLine(line);

    /// <summary>Takes a file's bar away at once, before its result line is printed above the others (which
    /// redraws the bars as last rendered).</summary>
    public void Remove(IDownloadProgress? progress)
    {
        if (progress is Bar bar)
        {
            bar.Task.StopTask();
            _context!.Refresh();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _finished.TrySetResult();
        await _running;
    }

    private sealed class Bar(ProgressTask task, string name) : IDownloadProgress
    {
        public ProgressTask Task => task;

        public void Started(ResponseHead head)
        {
            task.MaxValue = Math.Max(head.Length, 1);
            task.IsIndeterminate = false;
            task.Description = Markup.Escape($"{EscapingEnricher.Escape(name)} ({ClientOutput.Describe(head.Source)})");
            if (head.Length == 0)
            {
                task.Value = 1;
            }
        }

        public void Advanced(long bytes) => task.Value = bytes;
    }
}
