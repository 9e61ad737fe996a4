using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel;

/// <summary>The kernel command line from GRUB, applied: log verbosity, self-test, exit device, processor limit, console outputs.
/// Unknown words and bad values are reported and ignored; boot goes on.</summary>
internal static class BootOptions
{
    public static SelfTest SelfTest;
    /// <summary>microhv.maxcpus: at most this many processors, the boot processor included; 0: all.</summary>
    public static int MaxCpus;
    public static CommandLine Line;
    /// <summary>console= : where the log goes (Xen's default com1,vga).</summary>
    public static ConsoleOutputs Console = ConsoleOutputs.Com1 | ConsoleOutputs.Vga;

    public static void Parse(Multiboot2Info info)
    {
        byte[] buffer = new byte[1024];
        int length = 0;
        bool truncated = false;
        if (info.HasCommandLine)
            length = CommandLine.CopyFrom(DirectMap.Instance, info.CommandLineAddress, info.CommandLineLength, buffer, out truncated);
        Line = new CommandLine(buffer, length);
        KernelOptions.Parse(Line, out KernelOptions options);

        Log.Verbosity = options.Log == LogLevel.Quiet ? Log.Quiet : options.Log == LogLevel.Debug ? Log.Debug : Log.Info;
        SelfTest = options.SelfTest;
        MaxCpus = options.MaxCpus;
        QemuExit.Enabled = options.Exit == ExitDevice.IsaDebugExit;
        Console = options.Console;
        Log.ToSerial = (Console & ConsoleOutputs.Com1) != 0;

        if (truncated) Log.Line("cmdline: longer than 1024 bytes; the rest is ignored");
        int position = 0;
        while (KernelOptions.NextProblem(Line, ref position, out int start, out int wordLength, out OptionStatus status))
        {
            Log.Write(status == OptionStatus.BadValue ? "cmdline: unknown value in '" : "cmdline: unknown option '");
            for (int i = 0; i < wordLength; i++) Log.Put(buffer[start + i]);
            Log.Line("' ignored");
        }
    }
}
