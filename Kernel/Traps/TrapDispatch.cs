using System.Runtime.InteropServices;

namespace Microhv.Kernel.Traps;

internal static unsafe class TrapDispatch
{
    [UnmanagedCallersOnly(EntryPoint = "trap_dispatch")]
    static void Dispatch(TrapFrame* frame)
    {
        Cpu.Stop();
    }
}
