using System.Runtime.InteropServices;
using Microhv.Kernel.Console;

namespace Microhv.Kernel;

internal static unsafe class KernelMain
{
    [UnmanagedCallersOnly(EntryPoint = "kmain")]
    static void Main(uint multibootMagic, ulong multibootInfo, BootLayout* layout)
    {
        Internal.Runtime.KernelHeap.Initialize((byte*)layout->EarlyHeap, (byte*)layout->EarlyHeapEnd);
        SerialPort.Initialize();
        string s = "Microhv booting\n";
        for (int i = 0; i < s.Length; i++) SerialPort.Write((byte)s[i]);
        Cpu.Stop();
    }
}
