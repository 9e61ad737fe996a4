using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;

namespace Microhv.Bench;

/// <summary>A serial line and when it was complete, in seconds since QEMU was started.</summary>
public sealed record SerialLine(string Text, double Seconds);

/// <summary>What one QEMU run produced.</summary>
public sealed class RunResult
{
    public List<SerialLine> Lines { get; } = new();
    public bool Stopped { get; set; }          // the stop condition was met (QEMU was then ended by us)
    public bool TimedOut { get; set; }
    public int? ExitCode { get; set; }         // null: we ended QEMU
    public string Stderr { get; set; } = "";
    public string StartError { get; set; }
    public double Seconds { get; set; }

    public IEnumerable<string> Texts => Lines.Select(l => l.Text);

    /// <summary>Seconds from QEMU's start to the guest's first line, or null if the guest never printed.</summary>
    public double? FirstGuestLine => Lines.FirstOrDefault(l => GuestOutput.IsGuestLine(l.Text))?.Seconds;
}

/// <summary>
/// Runs qemu-system-x86_64 with the serial port on its stdout, until a stop condition on the
/// lines seen so far holds, QEMU exits, or a hard timeout passes; QEMU is always ended. The
/// serial text is cleaned of ANSI escapes and control characters (GRUB and SeaBIOS draw with
/// them) and written to a log file.
/// </summary>
public static class QemuRun
{
    private static readonly Regex AnsiEscape = new(@"\x1B(\[[0-?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_])", RegexOptions.Compiled);

    public static RunResult Run(string workingDirectory, IReadOnlyList<string> args, TimeSpan timeout, Func<IReadOnlyList<SerialLine>, bool> stop, string logPath)
    {
        var result = new RunResult();
        var psi = new ProcessStartInfo("qemu-system-x86_64")
        {
            RedirectStandardInput = true,   // kept open and silent: the guest gets no serial input
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (string a in args) psi.ArgumentList.Add(a);

        var clock = Stopwatch.StartNew();
        Process p;
        try { p = Process.Start(psi); }
        catch (Exception e) { result.StartError = e.Message; return result; }
        if (p == null) { result.StartError = "cannot start qemu-system-x86_64"; return result; }

        var gate = new object();
        var stderr = p.StandardError.ReadToEndAsync();
        var reader = new Thread(() => ReadSerial(p.StandardOutput.BaseStream, result, gate, clock)) { IsBackground = true };
        reader.Start();

        using (p)
        {
            while (true)
            {
                bool exited = p.WaitForExit(50);
                lock (gate)
                {
                    if (stop(result.Lines)) { result.Stopped = true; break; }
                }
                if (exited) break;
                if (clock.Elapsed > timeout) { result.TimedOut = true; break; }
            }
            if (!p.HasExited)
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                p.WaitForExit();
            }
            else
            {
                reader.Join(TimeSpan.FromSeconds(5));
                lock (gate) { if (!result.Stopped && stop(result.Lines)) result.Stopped = true; }
                if (!result.Stopped) result.ExitCode = p.ExitCode;
            }
            reader.Join(TimeSpan.FromSeconds(5));
            result.Seconds = clock.Elapsed.TotalSeconds;
            result.Stderr = stderr.Wait(TimeSpan.FromSeconds(5)) ? stderr.Result : "";
        }

        lock (gate)
        {
            if (logPath != null)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(logPath));
                var log = new StringBuilder();
                log.Append("# qemu-system-x86_64 ").AppendLine(string.Join(" ", args.Select(Quote)));
                foreach (SerialLine l in result.Lines) log.Append($"[{l.Seconds,8:0.000}] ").AppendLine(l.Text);
                if (result.Stderr.Length > 0) log.AppendLine("# stderr:").Append(result.Stderr);
                File.WriteAllText(logPath, log.ToString());
            }
        }
        return result;
    }

    public static string Quote(string a) => a.Length == 0 || a.Any(c => c == ' ' || c == '"' || c == '\'' || c == '$') ? "'" + a + "'" : a;

    private static void ReadSerial(Stream stream, RunResult result, object gate, Stopwatch clock)
    {
        var partial = new StringBuilder();
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
            {
                for (int i = 0; i < n; i++)
                {
                    char c = (char)buffer[i];
                    if (c != '\n') { partial.Append(c); continue; }
                    string text = Clean(partial.ToString());
                    partial.Clear();
                    lock (gate) result.Lines.Add(new SerialLine(text, clock.Elapsed.TotalSeconds));
                }
            }
        }
        catch (IOException) { }
        catch (ObjectDisposedException) { }
        if (partial.Length > 0) lock (gate) result.Lines.Add(new SerialLine(Clean(partial.ToString()), clock.Elapsed.TotalSeconds));
    }

    private static string Clean(string raw)
    {
        string s = AnsiEscape.Replace(raw, "");
        var sb = new StringBuilder(s.Length);
        foreach (char c in s) if (c >= ' ' && c < 0x7f) sb.Append(c);
        return sb.ToString();
    }
}
