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

    /// <summary>The hypervisor's own contexts (boot, self-tests, the idle loop): <paramref name="guestXmm"/>
    /// is null. Returns the exit stub's
    /// bits (ExitActions.StubOnly: leave by SYSRET, set CR0.TS). A runtime export, not an
    /// UnmanagedCallersOnly entry: the stub calls it as a plain function, with no transition frame.</summary>
    [System.Runtime.RuntimeExport("trap_dispatch")]
    static int Dispatch(TrapFrame* frame, byte* guestXmm)
    {
        ulong vector = frame->Vector;
        // A kick to a processor that has not joined the scheduler (Processors.Release's) only wakes it.
        if (vector == Smp.Ipi.KickVector && !Smp.Processors.Cpus[Smp.Processors.Current].Joined)
        {
            Timer.LocalApic.EndOfInterrupt();
            return 0;
        }
        // Once domains run, the hypervisor handles every interrupt (a guest's own traps go to
        // PvCpu's guest_trap_dispatch directly from the entry stub); the hypervisor's faults stay here.
        if (Pv.PvCpu.Active && vector >= 32)
        {
            if (vector == Timer.LocalApic.SpuriousInterruptVector) { SpuriousCount++; return Pv.PvCpu.Resume(); }
            return Pv.PvCpu.OnTrap(frame, guestXmm);
        }
        // The hypervisor's reload of a vCPU's selectors read its LDT: the page is mapped on demand and the load retried.
        if (vector == Vectors.PageFault && frame->Ring == 0 && Pv.PvCpu.Active && Pv.PvCpu.LdtFault(Cpu.ReadCr2(), frame->ErrorCode)) return 0;
        // The hypervisor's own fault on a guest address, in a fault-fixup copy (or a guest selector it loads): the
        // copy fails (the selector is null), nothing else.
        if ((vector == Vectors.PageFault || vector == Vectors.GeneralProtection || vector == Vectors.SegmentNotPresent)
            && frame->Ring == 0 && ExceptionFixup.Apply(frame)) return 0;
        if (vector == Clock.ApicTimerVector || (vector == Clock.PitVector && !Clock.UsingApic)) { Clock.OnTick(); return 0; }
        if (vector == Timer.LocalApic.SpuriousInterruptVector || (vector >= Pic.VectorBase && vector < Pic.VectorBase + 16))
        {
            SpuriousCount++;   // spurious APIC vector or a masked-PIC stray: no EOI owed
            return 0;
        }
        Fatal(frame);
        return 0;
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
        RegisterDump.Write(f, cr2);
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
