using System.Diagnostics;
using System.Globalization;
using System.Text;
using FileProxy.Hosting;
using FileProxy.Protocol;
using FileProxy.Protocol.Wire;

namespace FileProxy.Client;

/// <summary>
/// One progress bar per file in flight on standard error, which must be a terminal (<see cref="ClientOutput"/>
/// decides): name and cache result, bar, percentage, bytes, rate and time left, redrawn ten times a second with
/// plain ANSI codes (TERM is not consulted: CommandLine.RunAsync removed it). A finished file's bar gives way to its
/// result line, printed above the bars; at the end the bars are erased and the cursor comes back.
/// <para>Our own few lines rather than a console library: linking Spectre.Console for this cost every run of the
/// client, bar or no bar, 1.8 MiB of peak RSS and about 0.7 ms of start-up (docs/BENCHMARKS.md).</para>
/// </summary>
internal sealed class TerminalProgress : IAsyncDisposable
{
    private const string HideCursor = "\e[?25l";
    private const string ShowCursor = "\e[?25h";
    private const string ClearToEnd = "\e[J";
    private const int BarCells = 40;
    private static readonly TimeSpan RefreshEvery = TimeSpan.FromMilliseconds(100);

    private readonly Lock _lock = new();
    private readonly List<Bar> _bars = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly StringBuilder _frame = new();
    private readonly Timer _timer;
    private int _drawnLines;
    private bool _disposed;

    private TerminalProgress()
    {
        Console.Error.Write(HideCursor);
        _timer = new Timer(static self => ((TerminalProgress)self!).Refresh(), this, RefreshEvery, RefreshEvery);
    }

    public static TerminalProgress Start() => new();

    /// <summary>A bar for one file, moving to and fro until its answer arrives.</summary>
    public IDownloadProgress Add(string name)
    {
        var bar = new Bar(EscapingEnricher.Escape(name), _clock);
        lock (_lock)
        {
            _bars.Add(bar);
            Draw(null);
        }
        return bar;
    }

    /// <summary>Prints a line above the bars (or, once they are gone, after them).</summary>
    public void WriteLine(string line)
    {
        lock (_lock)
        {
            Draw(line);
        }
    }

    /// <summary>Takes a file's bar away at once, before its result line is printed above the others.</summary>
    public void Remove(IDownloadProgress? progress)
    {
        if (progress is Bar bar)
        {
            lock (_lock)
            {
                _bars.Remove(bar);
                Draw(null);
            }
        }
    }

    /// <summary>Erases the bars and shows the cursor again.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            _bars.Clear();
            Draw(null);
            Console.Error.Write(ShowCursor);
        }
        await _timer.DisposeAsync();
    }

    private void Refresh()
    {
        lock (_lock)
        {
            if (!_disposed && _bars.Count > 0)
            {
                Draw(null);
            }
        }
    }

    /// <summary>One frame, written at once: back to the first bar's line, erase down, the line (if any), the bars.
    /// The cursor rests at the start of the line below the last bar. Under <see cref="_lock"/>.</summary>
    private void Draw(string? line)
    {
        if (_disposed && line is null && _drawnLines == 0)
        {
            return;
        }
        _frame.Clear();
        if (_drawnLines > 0)
        {
            _frame.Append(CultureInfo.InvariantCulture, $"\r\e[{_drawnLines}A");
        }
        _frame.Append(ClearToEnd);
        if (line is not null)
        {
            _frame.Append(line).Append('\n');
        }
        var width = TerminalWidth() - 1; // not the last column: a full line would leave the cursor waiting to wrap
        foreach (var bar in _bars)
        {
            bar.Render(_frame, width);
            _frame.Append('\n');
        }
        _drawnLines = _bars.Count;
        Console.Error.Write(_frame.ToString());
    }

    private static int TerminalWidth()
    {
        try
        {
            var width = Console.WindowWidth;
            return width > 0 ? width : 80;
        }
        catch (IOException)
        {
            return 80;
        }
    }

    /// <summary>One file's bar. Its figures are written by the download's threads and read by whoever draws.</summary>
    private sealed class Bar(string name, Stopwatch clock) : IDownloadProgress
    {
        private string _description = "";
        private long _length = -1;
        private long _bytes;
        private long _startedTicks;

        public void Started(ResponseHead head)
        {
            Volatile.Write(ref _description, $"{name} ({ClientOutput.Describe(head.Source)})");
            Volatile.Write(ref _startedTicks, clock.ElapsedTicks);
            Volatile.Write(ref _length, head.Length);
        }

        public void Advanced(long bytes) => Volatile.Write(ref _bytes, bytes);

        /// <summary>"name (cache hit)  ━━━━━━━━╺━━━━  23%  1.0/4.0 MiB  120.00 MiB/s  00:00:03", fitted to the
        /// terminal's width: the name gives way first.</summary>
        public void Render(StringBuilder frame, int width)
        {
            var length = Volatile.Read(ref _length);
            var bytes = Volatile.Read(ref _bytes);
            var description = length < 0 ? name : Volatile.Read(ref _description);
            var figures = length < 0 ? "" : Figures(bytes, length);
            var cells = Math.Clamp(width - figures.Length - 2 - Math.Min(description.Length, 20), 4, BarCells);
            var room = Math.Max(width - figures.Length - cells - 2, 1);
            frame.Append(description.Length <= room ? description.PadRight(room) : description[..(room - 1)] + "…").Append(' ');
            if (length < 0)
            {
                // No answer yet: a short segment that runs along the bar.
                var at = (int)(clock.ElapsedMilliseconds / 100 % cells);
                frame.Append("\e[90m").Append('━', at).Append("\e[33m").Append('━', Math.Min(3, cells - at))
                    .Append("\e[90m").Append('━', Math.Max(cells - at - 3, 0)).Append("\e[0m");
            }
            else
            {
                var done = length == 0 ? cells : (int)(cells * Math.Min(bytes, length) / length);
                frame.Append(done == cells ? "\e[32m" : "\e[33m").Append('━', done).Append("\e[90m").Append('━', cells - done).Append("\e[0m");
            }
            frame.Append(' ').Append(figures);
        }

        /// <summary>Percentage, bytes so far of the whole, rate and time left.</summary>
        private string Figures(long bytes, long length)
        {
            var percent = length == 0 ? 100 : (int)(100 * Math.Min(bytes, length) / length);
            var (scale, unit) = length switch
            {
                >= 1L << 30 => (1L << 30, "GiB"),
                >= 1L << 20 => (1L << 20, "MiB"),
                >= 1L << 10 => (1L << 10, "KiB"),
                _ => (1L, "B"),
            };
            var seconds = (clock.ElapsedTicks - Volatile.Read(ref _startedTicks)) / (double)Stopwatch.Frequency;
            var rate = seconds > 0 ? bytes / seconds : 0;
            var left = rate > 0 ? TimeSpan.FromSeconds(Math.Min((length - bytes) / rate, 359_999)) : (TimeSpan?)null;
            return string.Create(CultureInfo.InvariantCulture,
                $"{percent,3}% {bytes / (double)scale:0.0}/{length / (double)scale:0.0} {unit} {Units.FormatBytes(rate)}/s {(left is { } t ? $"{(int)t.TotalHours:00}:{t:mm\\:ss}" : "--:--:--")}");
        }
    }
}
