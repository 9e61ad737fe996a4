using System.Runtime.InteropServices;
using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Timer;

namespace Microhv.Kernel.Traps;

/// <summary>
/// Where every interrupt and exception lands (called by Boot/traps.asm with the saved frame).
/// Device interrupts are acknowledged and handled; an exception the kernel did not expect is fatal:
/// a full register dump, the faulting RIP's symbol, and a clean halt.
/// </summary>
internal static unsafe class TrapDispatch
{
    public static ulong SpuriousCount;
    private static bool s_inFatal;

    [UnmanagedCallersOnly(EntryPoint = "trap_dispatch")]
    static void Dispatch(TrapFrame* frame, byte* fpuState)
    {
        ulong vector = frame->Vector;
        // Once domains run, the hypervisor handles everything but the hypervisor's own faults.
        if (Pv.PvCpu.Active && (frame->Ring == 3 || vector >= 32))
        {
            if (vector == Timer.LocalApic.SpuriousInterruptVector) { SpuriousCount++; return; }
            Pv.PvCpu.OnTrap(frame, fpuState);
            return;
        }
        if (vector == Clock.ApicTimerVector || (vector == Clock.PitVector && !Clock.UsingApic)) { Clock.OnTick(); return; }
        if (vector == Timer.LocalApic.SpuriousInterruptVector || (vector >= Pic.VectorBase && vector < Pic.VectorBase + 16))
        {
            SpuriousCount++;   // spurious APIC vector or a masked-PIC stray: no EOI owed
            return;
        }
        Fatal(frame);
    }

    private static void Fatal(TrapFrame* f)
    {
        ulong cr2 = Cpu.ReadCr2();
        if (s_inFatal) Cpu.Stop();            // a fault while reporting a fault: stop quietly
        s_inFatal = true;

        Log.Line();
        Log.Write("FATAL: ");
        if (f->Vector < 32) { Log.Write(Vectors.Name(f->Vector)); Log.Write(", vector "); Log.Dec(f->Vector); Log.Write(")"); }
        else { Log.Write("unexpected interrupt, vector "); Log.Dec(f->Vector); }
        Log.Write(", error code "); Log.Hex(f->ErrorCode); Log.Line();
        if (f->Vector == Vectors.PageFault) DescribePageFault(f->ErrorCode, cr2);
        Log.Write("  "); Log.Field("RIP", f->Rip); Log.Write(" "); Log.Field("RSP", f->Rsp); Log.Write(" "); Log.Field("RFLAGS", f->Rflags); Log.Line();
        Log.Write("  "); Log.Field("CR2", cr2); Log.Write(" "); Log.Field("CR3", Cpu.ReadCr3());
        Log.Write(" CS="); Log.Hex(f->Cs, 4); Log.Write(" SS="); Log.Hex(f->Ss, 4); Log.Line();
        Log.Write("  "); Log.Field("RAX", f->Rax); Log.Write(" "); Log.Field("RBX", f->Rbx); Log.Write(" "); Log.Field("RCX", f->Rcx); Log.Write(" "); Log.Field("RDX", f->Rdx); Log.Line();
        Log.Write("  "); Log.Field("RSI", f->Rsi); Log.Write(" "); Log.Field("RDI", f->Rdi); Log.Write(" "); Log.Field("RBP", f->Rbp); Log.Write(" "); Log.Field("R8", f->R8); Log.Line();
        Log.Write("  "); Log.Field("R9", f->R9); Log.Write(" "); Log.Field("R10", f->R10); Log.Write(" "); Log.Field("R11", f->R11); Log.Write(" "); Log.Field("R12", f->R12); Log.Line();
        Log.Write("  "); Log.Field("R13", f->R13); Log.Write(" "); Log.Field("R14", f->R14); Log.Write(" "); Log.Field("R15", f->R15); Log.Line();
        Log.Write("  at "); Symbols.Write(f->Rip); Log.Line();
        Log.Line("Microhv halted.");
        QemuExit.Exit(QemuExit.Fatal);
        Cpu.Stop();
    }

    private static void DescribePageFault(ulong error, ulong cr2)
    {
        Log.Write("  ");
        Log.Write((error & 2) != 0 ? "write" : (error & 16) != 0 ? "instruction fetch" : "read");
        Log.Write((error & 1) != 0 ? " to a present page (protection violation)" : " to a non-present page");
        Log.Write((error & 4) != 0 ? " from user mode" : " from kernel mode");
        if ((error & 8) != 0) Log.Write(", reserved bit set");
        Log.Write(" at "); Log.Hex(cr2); Log.Line();
    }
}
