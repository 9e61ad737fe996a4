using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Threading;

namespace Microhv.Tests.Qemu;

/// <summary>
/// One qemu-system-x86_64 run for a test. It adds to the caller's arguments:
/// the serial port on QEMU's stdout (read here line by line), a QMP socket for monitor commands,
/// isa-debug-exit at 0xf4 (the kernel's microhv.exit=isa-debug-exit), -no-reboot, -display none.
///
/// Never hangs a test: every wait has a timeout, and a hard timeout kills QEMU whatever the test
/// does. At most <see cref="MaxParallel"/> machines run at once across the whole test run (TCG is
/// CPU-bound; the CI machine has two cores); the hard timeout starts once a slot is free.
///
/// Serial lines are kept as text: ANSI escape sequences (GRUB and OVMF draw with them), carriage
/// returns and other control characters are removed, so a kernel line compares as printed.
/// </summary>
public sealed class QemuMachine : IDisposable
{
    public const int MaxParallel = 2;
    public static readonly TimeSpan DefaultHardTimeout = TimeSpan.FromMinutes(3);

    private static readonly SemaphoreSlim Slots = new(MaxParallel, MaxParallel);
    private static readonly Regex AnsiEscape = new(@"\x1B(\[[0-?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_])", RegexOptions.Compiled);

    private readonly object _gate = new();
    private readonly List<string> _lines = new();
    private readonly StringBuilder _partial = new();
    private readonly StringBuilder _stderr = new();
    private readonly Process _process;
    private readonly Thread _serialReader;
    private readonly Timer _hardTimeout;
    private readonly string _qmpPath;
    private readonly string _workDir;
    private bool _serialClosed;
    private int _cursor;
    private bool _slotHeld;
    private Socket _qmp;
    private StreamReader _qmpReader;

    /// <summary>True if the hard timeout (not the guest) ended QEMU.</summary>
    public bool KilledByHardTimeout { get; private set; }

    /// <summary>The command line QEMU was started with, for failure messages.</summary>
    public string CommandLine { get; }

    private QemuMachine(string workDir, IReadOnlyList<string> args, TimeSpan hardTimeout)
    {
        _workDir = workDir;
        Directory.CreateDirectory(workDir);
        _qmpPath = Path.Combine(workDir, $"qmp-{Guid.NewGuid():N}".Substring(0, 16) + ".sock");

        var all = new List<string>
        {
            "-no-reboot",
            "-display", "none",
            "-serial", "stdio",
            "-monitor", "none",
            "-qmp", $"unix:{_qmpPath},server=on,wait=off",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        };
        all.AddRange(args);
        CommandLine = "qemu-system-x86_64 " + string.Join(" ", all.Select(a => a.Contains(' ') ? $"'{a}'" : a));

        var psi = new ProcessStartInfo("qemu-system-x86_64")
        {
            RedirectStandardInput = true,   // the serial port's input: silent unless a test types (Type)
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir,
        };
        foreach (string a in all) psi.ArgumentList.Add(a);

        Slots.Wait();
        _slotHeld = true;
        try
        {
            _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start qemu-system-x86_64");
        }
        catch (Exception e)
        {
            ReleaseSlot();
            throw new InvalidOperationException(
                "could not start qemu-system-x86_64 (install qemu-system-x86): " + e.Message, e);
        }

        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_gate) _stderr.AppendLine(e.Data); };
        _process.BeginErrorReadLine();
        _serialReader = new Thread(ReadSerial) { IsBackground = true, Name = "qemu serial" };
        _serialReader.Start();
        _hardTimeout = new Timer(_ => { KilledByHardTimeout = true; Kill(); }, null, hardTimeout, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Starts QEMU with <paramref name="args"/> (plus the fixed ones above); files go to <paramref name="workDir"/>.</summary>
    public static QemuMachine Start(string workDir, IEnumerable<string> args, TimeSpan? hardTimeout = null)
        => new(workDir, args.ToList(), hardTimeout ?? DefaultHardTimeout);

    /// <summary>Every complete serial line so far (and, once QEMU has ended, an unfinished last one).</summary>
    public IReadOnlyList<string> Lines { get { lock (_gate) return _lines.ToList(); } }

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Waits for the next serial line equal to <paramref name="text"/> (trailing blanks ignored) after
    /// the line the previous wait matched, so consecutive waits check the order of lines.
    /// Fails at once if QEMU ends first. Returns the line.
    /// </summary>
    public string WaitForLine(string text, TimeSpan timeout)
        => WaitFor(line => line.TrimEnd() == text, $"the line \"{text}\"", timeout);

    /// <summary>As <see cref="WaitForLine(string, TimeSpan)"/>, for the next line matching <paramref name="pattern"/>.</summary>
    public Match WaitForLine(Regex pattern, TimeSpan timeout)
    {
        string line = WaitFor(l => pattern.IsMatch(l), $"a line matching /{pattern}/", timeout);
        return pattern.Match(line);
    }

    private string WaitFor(Func<string, bool> matches, string what, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        lock (_gate)
        {
            while (true)
            {
                for (; _cursor < _lines.Count; _cursor++)
                {
                    if (matches(_lines[_cursor]))
                        return _lines[_cursor++];
                }
                if (_serialClosed)
                    throw new QemuTestException(KilledByHardTimeout
                        ? $"the hard timeout killed QEMU before the serial console showed {what}"
                        : $"QEMU ended before the serial console showed {what}", this);
                TimeSpan left = timeout - deadline.Elapsed;
                if (left <= TimeSpan.Zero)
                    throw new QemuTestException($"the serial console did not show {what} within {timeout.TotalSeconds:0} s", this);
                Monitor.Wait(_gate, left);
            }
        }
    }

    /// <summary>
    /// Waits for QEMU to end by itself and returns its exit status (isa-debug-exit: (code &lt;&lt; 1) | 1;
    /// -no-reboot after a triple fault: 0). Kills QEMU and fails if it runs longer than <paramref name="timeout"/>.
    /// </summary>
    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            Kill();
            throw new QemuTestException($"QEMU did not exit within {timeout.TotalSeconds:0} s", this);
        }
        _process.WaitForExit(); // drains the redirected streams
        _serialReader.Join(TimeSpan.FromSeconds(5));
        if (KilledByHardTimeout)
            throw new QemuTestException("QEMU was killed by the hard timeout", this);
        return _process.ExitCode;
    }

    /// <summary>
    /// Types <paramref name="text"/> on the serial console (QEMU's stdin is COM1's receive side), as a
    /// user at a terminal would: bytes as given (Latin-1), so "\r" is Enter and "\x01" is Ctrl-A. Bytes
    /// go out <paramref name="charDelay"/> apart (default 2 ms), because a guest that polls or has a
    /// small FIFO loses a burst a terminal never sends.
    /// </summary>
    public void Type(string text, TimeSpan? charDelay = null)
    {
        TimeSpan delay = charDelay ?? TimeSpan.FromMilliseconds(2);
        Stream stdin = _process.StandardInput.BaseStream;
        foreach (char c in text)
        {
            stdin.WriteByte((byte)c);
            stdin.Flush();
            if (delay > TimeSpan.Zero) Thread.Sleep(delay);
        }
    }

    /// <summary>Runs a human monitor (HMP) command, e.g. "info registers", through QMP; returns its output.</summary>
    public string MonitorCommand(string command)
    {
        JsonElement result = Qmp("human-monitor-command", new Dictionary<string, string> { ["command-line"] = command });
        return result.ValueKind == JsonValueKind.String ? result.GetString() : result.ToString();
    }

    /// <summary>Saves the current screen (VGA text or framebuffer) as a binary PPM file and returns its path.</summary>
    public string Screendump(string path)
    {
        path = Path.GetFullPath(path);
        File.Delete(path);
        Qmp("screendump", new { filename = path });
        if (!File.Exists(path))
            throw new QemuTestException($"screendump wrote no file {path}", this);
        return path;
    }

    /// <summary>Sends one QMP command and returns its "return" value; fails on a QMP error.</summary>
    public JsonElement Qmp(string command, object arguments = null)
    {
        lock (_qmpPath)
        {
            if (_qmp == null) ConnectQmp();
            SendQmp(arguments == null ? new { execute = command } : new { execute = command, arguments });
            return ReadQmpReturn(command);
        }
    }

    private void ConnectQmp()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(_qmpPath));
                socket.ReceiveTimeout = 30_000;
                _qmp = socket;
                break;
            }
            catch (SocketException) when (deadline.Elapsed < TimeSpan.FromSeconds(15) && !_process.HasExited)
            {
                socket.Dispose();
                Thread.Sleep(100);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new QemuTestException($"cannot connect to QMP at {_qmpPath}: {e.Message}", this);
            }
        }
        _qmpReader = new StreamReader(new NetworkStream(_qmp, ownsSocket: false), Encoding.UTF8);
        _qmpReader.ReadLine(); // greeting: {"QMP": {...}}
        SendQmp(new { execute = "qmp_capabilities" });
        ReadQmpReturn("qmp_capabilities");
    }

    private void SendQmp(object message)
    {
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(message);
        _qmp.Send(bytes);
        _qmp.Send("\n"u8.ToArray());
    }

    private JsonElement ReadQmpReturn(string command)
    {
        while (true)
        {
            string line;
            try { line = _qmpReader.ReadLine(); }
            catch (IOException e) { throw new QemuTestException($"QMP {command}: {e.Message}", this); }
            if (line == null)
                throw new QemuTestException($"QMP connection closed during {command}", this);
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty("return", out JsonElement ret))
                return ret.Clone();
            if (doc.RootElement.TryGetProperty("error", out JsonElement err))
                throw new QemuTestException($"QMP {command} failed: {err}", this);
            // anything else is an asynchronous event: skip it
        }
    }

    private void ReadSerial()
    {
        Stream stdout = _process.StandardOutput.BaseStream;
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = stdout.Read(buffer, 0, buffer.Length)) > 0)
            {
                lock (_gate)
                {
                    for (int i = 0; i < n; i++)
                    {
                        if (buffer[i] == (byte)'\n') EndLine();
                        else _partial.Append((char)buffer[i]); // Latin-1: one char per byte
                    }
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch (IOException) { }
        catch (ObjectDisposedException) { }
        finally
        {
            lock (_gate)
            {
                if (_partial.Length > 0) EndLine();
                _serialClosed = true;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void EndLine()
    {
        _lines.Add(Clean(_partial.ToString()));
        _partial.Clear();
    }

    /// <summary>A raw serial line as text: no escape sequences, no control characters but tabs.</summary>
    public static string Clean(string raw)
    {
        string s = AnsiEscape.Replace(raw, "");
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            if (c == '\t' || (c >= ' ' && c != '\x7f')) sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>The serial log (last lines) and QEMU's stderr, for failure messages.</summary>
    public string Describe(int lastLines = 80)
    {
        List<string> lines;
        string partial, stderr;
        lock (_gate) { lines = _lines.ToList(); partial = _partial.ToString(); stderr = _stderr.ToString(); }
        var sb = new StringBuilder();
        sb.AppendLine($"command: {CommandLine}");
        sb.AppendLine($"serial console ({lines.Count} lines{(lines.Count > lastLines ? $", last {lastLines}" : "")}):");
        foreach (string l in lines.Skip(Math.Max(0, lines.Count - lastLines))) sb.AppendLine("  | " + l);
        if (partial.Length > 0) sb.AppendLine("  | " + Clean(partial) + "   <- no newline yet");
        if (stderr.Length > 0) sb.AppendLine("QEMU stderr:").Append(stderr);
        return sb.ToString();
    }

    private void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { }
        catch (System.ComponentModel.Win32Exception) { }
    }

    private void ReleaseSlot()
    {
        if (_slotHeld) { _slotHeld = false; Slots.Release(); }
    }

    public void Dispose()
    {
        _hardTimeout?.Dispose();
        Kill();
        try { _process?.WaitForExit(10_000); } catch (InvalidOperationException) { }
        _serialReader?.Join(TimeSpan.FromSeconds(5));
        _qmpReader?.Dispose();
        _qmp?.Dispose();
        _process?.Dispose();
        try { File.Delete(_qmpPath); } catch (IOException) { }
        ReleaseSlot();
    }
}

/// <summary>A QEMU test failure; the message carries the serial log and QEMU's stderr.</summary>
public sealed class QemuTestException : Exception
{
    public QemuTestException(string message, QemuMachine machine)
        : base(message + Environment.NewLine + machine.Describe()) { }
}
