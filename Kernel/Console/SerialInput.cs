using Microhv.Hypervisor;
using Microhv.Kernel.Timer;

namespace Microhv.Kernel.Console;

/// <summary>
/// COM1's receive interrupt, once domains run: every byte waiting in the UART goes to the
/// hypervisor's console input (Hypervisor/ConsoleInput.cs decides whose it is). The UART raises
/// ISA IRQ 4 through the 8259, which reaches the CPU through the local APIC's LINT0 (virtual wire).
/// </summary>
internal static class SerialInput
{
    public const byte Vector = Pic.VectorBase + SerialPort.Irq;

    /// <summary>At most this many bytes per interrupt (the FIFO is 16): a stuck "data ready" cannot hold the CPU.</summary>
    private const int MaxBytesPerInterrupt = 64;

    public static ulong Interrupts;

    public static void Enable()
    {
        LocalApic.RouteLegacyPicThroughLint0();
        while (SerialPort.TryRead(out _)) { }      // what was typed before boot is nobody's input
        SerialPort.EnableReceiveInterrupt();
        Pic.Unmask(SerialPort.Irq);
    }

    public static void OnInterrupt(ConsoleInput input)
    {
        Interrupts++;
        for (int i = 0; i < MaxBytesPerInterrupt && SerialPort.TryRead(out byte b); i++) input.Receive(b);
        Pic.EndOfInterrupt(SerialPort.Irq);
    }
}
