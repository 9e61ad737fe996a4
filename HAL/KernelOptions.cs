namespace Microhv.HAL;

/// <summary>Console verbosity chosen by <c>microhv.log=</c>.</summary>
public enum LogLevel
{
    Info = 0,
    Quiet,
    Debug,
}

/// <summary>Boot-time self test chosen by <c>microhv.selftest=</c>.</summary>
public enum SelfTest
{
    None = 0,
    PageFault,
    Divide,
    Timer,
    Fpu,
    StackOverflow,
}

/// <summary>Device the kernel reports its result through, chosen by <c>microhv.exit=</c>.</summary>
public enum ExitDevice
{
    None = 0,
    /// <summary>QEMU's isa-debug-exit at I/O port 0xF4.</summary>
    IsaDebugExit,
}

/// <summary>Where Microhv's log goes, chosen by Xen's <c>console=</c> (a comma-separated list).</summary>
[System.Flags]
public enum ConsoleOutputs
{
    None = 0,
    /// <summary>The serial port COM1.</summary>
    Com1 = 1,
    /// <summary>The screen (VGA text or the boot framebuffer), until a hardware domain takes it.</summary>
    Vga = 2,
}

/// <summary>How one command-line word was taken.</summary>
public enum OptionStatus
{
    Ok = 0,
    /// <summary>The key is not an option this kernel knows.</summary>
    UnknownOption,
    /// <summary>A known key with a missing or unrecognised value.</summary>
    BadValue,
}

/// <summary>
/// The options Microhv reads from its command line:
/// <c>microhv.log=quiet|info|debug</c> (default info), <c>microhv.selftest=pagefault|divide|timer|fpu|stackoverflow|none</c>
/// (default none), <c>microhv.exit=isa-debug-exit|none</c> (default none), <c>microhv.maxcpus=N</c>
/// (1 to <see cref="MaxCpusLimit"/>; default: every processor the firmware lists) and Xen's <c>console=</c>, a
/// comma-separated list of <c>com1</c> and <c>vga</c> (default <c>com1,vga</c>; an unknown item refuses the word).
/// Any other word is an unknown option; later words override earlier ones.
/// </summary>
public struct KernelOptions
{
    public const string LogKey = "microhv.log";
    public const string SelfTestKey = "microhv.selftest";
    public const string ExitKey = "microhv.exit";
    public const string MaxCpusKey = "microhv.maxcpus";
    public const int MaxCpusLimit = 4096;
    public const string ConsoleKey = "console";

    public LogLevel Log;
    public SelfTest SelfTest;
    public ExitDevice Exit;
    /// <summary>At most this many processors are started, the boot processor included; 0: no limit.</summary>
    public int MaxCpus;
    public ConsoleOutputs Console;

    public static KernelOptions Defaults
    {
        get
        {
            KernelOptions o;
            o.Log = LogLevel.Info;
            o.SelfTest = SelfTest.None;
            o.Exit = ExitDevice.None;
            o.MaxCpus = 0;
            o.Console = ConsoleOutputs.Com1 | ConsoleOutputs.Vga;
            return o;
        }
    }

    /// <summary>Applies one word of <paramref name="line"/>; on a problem the options are left unchanged.</summary>
    public OptionStatus Apply(CommandLine line, int start, int length)
    {
        line.SplitWord(start, length, out int keyLength, out bool hasValue, out int vs, out int vl);
        if (line.BytesEqual(start, keyLength, LogKey))
        {
            if (!hasValue) return OptionStatus.BadValue;
            if (line.BytesEqual(vs, vl, "quiet")) Log = LogLevel.Quiet;
            else if (line.BytesEqual(vs, vl, "info")) Log = LogLevel.Info;
            else if (line.BytesEqual(vs, vl, "debug")) Log = LogLevel.Debug;
            else return OptionStatus.BadValue;
            return OptionStatus.Ok;
        }
        if (line.BytesEqual(start, keyLength, SelfTestKey))
        {
            if (!hasValue) return OptionStatus.BadValue;
            if (line.BytesEqual(vs, vl, "pagefault")) SelfTest = SelfTest.PageFault;
            else if (line.BytesEqual(vs, vl, "divide")) SelfTest = SelfTest.Divide;
            else if (line.BytesEqual(vs, vl, "timer")) SelfTest = SelfTest.Timer;
            else if (line.BytesEqual(vs, vl, "fpu")) SelfTest = SelfTest.Fpu;
            else if (line.BytesEqual(vs, vl, "stackoverflow")) SelfTest = SelfTest.StackOverflow;
            else if (line.BytesEqual(vs, vl, "none")) SelfTest = SelfTest.None;
            else return OptionStatus.BadValue;
            return OptionStatus.Ok;
        }
        if (line.BytesEqual(start, keyLength, ExitKey))
        {
            if (!hasValue) return OptionStatus.BadValue;
            if (line.BytesEqual(vs, vl, "isa-debug-exit")) Exit = ExitDevice.IsaDebugExit;
            else if (line.BytesEqual(vs, vl, "none")) Exit = ExitDevice.None;
            else return OptionStatus.BadValue;
            return OptionStatus.Ok;
        }
        if (line.BytesEqual(start, keyLength, MaxCpusKey))
        {
            if (!hasValue || !ParseDecimal(line, vs, vl, out int n) || n < 1 || n > MaxCpusLimit) return OptionStatus.BadValue;
            MaxCpus = n;
            return OptionStatus.Ok;
        }
        if (line.BytesEqual(start, keyLength, ConsoleKey))
        {
            if (!ParseConsole(line, vs, vl, out ConsoleOutputs outputs)) return OptionStatus.BadValue;
            Console = outputs;
            return OptionStatus.Ok;
        }
        return OptionStatus.UnknownOption;
    }

    private static bool ParseDecimal(CommandLine line, int start, int length, out int value)
    {
        value = 0;
        if (length < 1 || length > 9) return false;
        for (int i = 0; i < length; i++)
        {
            byte c = line.Bytes[start + i];
            if (c < (byte)'0' || c > (byte)'9') return false;
            value = value * 10 + (c - '0');
        }
        return true;
    }

    /// <summary>A list like Xen's <c>com1,vga</c>: each item com1 or vga, at least one, nothing empty.</summary>
    private static bool ParseConsole(CommandLine line, int start, int length, out ConsoleOutputs outputs)
    {
        outputs = ConsoleOutputs.None;
        if (length == 0) return false;
        int end = start + length;
        int item = start;
        while (item <= end)
        {
            int stop = item;
            while (stop < end && line.Bytes[stop] != (byte)',') stop++;
            if (line.BytesEqual(item, stop - item, "com1")) outputs |= ConsoleOutputs.Com1;
            else if (line.BytesEqual(item, stop - item, "vga")) outputs |= ConsoleOutputs.Vga;
            else return false;
            item = stop + 1;
        }
        return true;
    }

    /// <summary>
    /// Parses every word of <paramref name="line"/> starting from the defaults and returns how many words were
    /// unknown or had bad values. To report them, walk the words with <see cref="CommandLine.NextWord"/> and
    /// <see cref="Apply"/> again (or use <see cref="NextProblem"/>).
    /// </summary>
    public static int Parse(CommandLine line, out KernelOptions options)
    {
        options = Defaults;
        int problems = 0;
        int position = 0;
        while (line.NextWord(ref position, out int start, out int length))
        {
            if (options.Apply(line, start, length) != OptionStatus.Ok) problems++;
        }
        return problems;
    }

    /// <summary>
    /// Next word at or after <paramref name="position"/> that is unknown or has a bad value; false when none is left.
    /// </summary>
    public static bool NextProblem(CommandLine line, ref int position, out int start, out int length, out OptionStatus status)
    {
        KernelOptions scratch = Defaults;
        while (line.NextWord(ref position, out start, out length))
        {
            status = scratch.Apply(line, start, length);
            if (status != OptionStatus.Ok) return true;
        }
        status = OptionStatus.Ok;
        return false;
    }
}
