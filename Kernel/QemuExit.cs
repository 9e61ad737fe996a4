namespace Microhv.Kernel;

/// <summary>
/// Reports a result to the emulator through QEMU's isa-debug-exit device (port 0xF4), which ends
/// QEMU with status (code &lt;&lt; 1) | 1. Only used when the command line asks for it
/// (microhv.exit=isa-debug-exit): on real hardware the port may belong to something else.
/// </summary>
internal static class QemuExit
{
    public const ushort Port = 0xF4;
    public const byte Pass = 0x00, Fail = 0x01, Fatal = 0x10;
    public static bool Enabled;

    public static void Exit(byte code)
    {
        if (Enabled) Cpu.OutD(Port, code);
    }
}
