using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Kernel.Console;

namespace Microhv.Kernel.Pv;

/// <summary>When every domain has shut down: one line per domain (exit reason, code, hypercalls by
/// name), then the machine stops — QEMU exits through isa-debug-exit when asked.</summary>
internal static unsafe class DomainSummary
{
    /// <summary>Free frames before the first domain was built; every frame a domain held must be back at the end.</summary>
    public static ulong FreeFramesAtStart;

    public static void PrintAndExit(Machine m)
    {
        bool allPoweroff = true;
        ConsoleRing.EndOpenLine(m);
        Log.Line("Microhv: all domains have shut down");
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            Log.Write("summary: domain "); Log.Dec(d.DomainId);
            byte[] name = d.Name;
            if (name != null && name.Length > 0) { Log.Write(" ("); for (int k = 0; k < name.Length; k++) Log.Put(name[k]); Log.Write(")"); }
            Log.Write(": "); Log.Write(ReasonName(d)); Log.Write(", code "); Log.Dec(d.ShutdownCode);
            if (d.State == DomainState.Crashed && d.CrashReason != null) { Log.Write(" ("); Log.Write(d.CrashReason); Log.Write(")"); }
            Log.Line();
            Log.Write("summary: domain "); Log.Dec(d.DomainId); Log.Write(" hypercalls:");
            ulong total = 0;
            for (int n = 0; n < Xen.NR_hypercalls; n++)
            {
                if (d.HypercallCounts[n] == 0) continue;
                Log.Write(" "); Log.Write(HypercallTable.NameOf((ulong)n)); Log.Write("="); Log.Dec(d.HypercallCounts[n]);
                total += d.HypercallCounts[n];
            }
            if (d.UnknownHypercalls != 0) { Log.Write(" unknown="); Log.Dec(d.UnknownHypercalls); }
            Log.Write(" total="); Log.Dec(total + d.UnknownHypercalls); Log.Line();
            if (d.State != DomainState.Shutdown || d.ShutdownReason != Sched.SHUTDOWN_poweroff) allPoweroff = false;
        }
        ulong heap = Internal.Runtime.KernelHeap.Allocated;
        ulong traps = 0, hypercalls = 0;
        for (int i = 0; i < PvCpu.Entries.Length; i++) { traps += PvCpu.Entries[i].Traps; hypercalls += PvCpu.Entries[i].Hypercalls; }
        Log.Write("summary: "); Log.Dec(traps); Log.Write(" traps, "); Log.Dec(hypercalls); Log.Write(" hypercalls, ");
        Log.Dec(m.Scheduler.Switches); Log.Write(" vCPU switches; managed heap "); Log.Dec(PvCpu.HeapAtStart);
        Log.Write(" bytes at guest start, +"); Log.Dec(heap - PvCpu.HeapAtStart); Log.Line(" while guests ran");
        if (Smp.Processors.Count > 1) PerCpu(m);
        Log.Write("summary: "); Log.Dec(Traps.ExceptionFixup.Count); Log.Line(" guest accesses faulted in the hypervisor's copies (-EFAULT)");
        ulong exitFaults = 0;
        for (int i = 0; i < PvCpu.Entries.Length; i++) exitFaults += PvCpu.Entries[i].ExitFaults;
        if (exitFaults != 0) { Log.Write("summary: "); Log.Dec(exitFaults); Log.Line(" exits to a guest refused by the CPU at their IRETQ (its CS, SS or RIP), given to the guest as its own fault"); }
        ulong debugInHypervisor = DebugInHypervisor();
        if (debugInHypervisor != 0) { Log.Write("summary: "); Log.Dec(debugInHypervisor); Log.Line(" #DB in the hypervisor's own context (a guest's breakpoint on memory it touched), dropped as Xen does"); }
        FrameAllocator frames = m.Frames as FrameAllocator;
        if (frames != null)
        {
            Log.Write("summary: frames: "); Log.Dec(FreeFramesAtStart); Log.Write(" free before the domains were built, ");
            Log.Dec(frames.FreeFrames); Log.Write(" after the last one ended");
            if (frames.FreeFrames < FreeFramesAtStart) { Log.Write(" ("); Log.Dec(FreeFramesAtStart - frames.FreeFrames); Log.Write(" not returned)"); }
            if (frames.FreeFrames > FreeFramesAtStart) { Log.Write(" ("); Log.Dec(frames.FreeFrames - FreeFramesAtStart); Log.Write(" more: freed twice)"); }
            Log.Line();
            if (!CheckFrameTable(m, frames)) allPoweroff = false;
        }
        if (QemuExit.Enabled)
        {
            Log.Line("Microhv: powering off (isa-debug-exit)");
            QemuExit.Exit(allPoweroff ? QemuExit.Pass : QemuExit.Fail);
        }
        else if (PowerOff.Available)
        {
            Log.Line("Microhv: powering off (ACPI S5)");
            PowerOff.Now();
            Log.Line("Microhv: the machine did not turn off");
        }
        Log.Line("Microhv: halted");
        Cpu.Stop();
    }

    private static readonly FrameProblem[] Problems = new FrameProblem[8];

    /// <summary>The frame table's self-check (Hypervisor/FrameTableCheck.cs): every domain has ended, so every
    /// frame must be back and blank, or the hypervisor's own; false (the run fails) on any inconsistency.</summary>
    private static bool CheckFrameTable(Machine m, FrameAllocator frames)
    {
        ulong bad = FrameTableCheck.Run(m.FrameTable, frames, Problems, out ulong checkedFrames);
        if (bad == 0)
        {
            Log.Write("summary: frame table consistent ("); Log.Dec(checkedFrames); Log.Line(" frames checked)");
            return true;
        }
        Log.Write("summary: frame table inconsistent: "); Log.Dec(bad); Log.Write(" of "); Log.Dec(checkedFrames); Log.Line(" frames");
        for (int i = 0; i < Problems.Length && (ulong)i < bad; i++)
        {
            Log.Write("summary: frame "); Log.Hex(Problems[i].Mfn); Log.Write(": "); Log.Write(FrameTableCheck.Describe(Problems[i].Fault));
            Log.Write(" "); Log.Hex(Problems[i].Value); Log.Line();
        }
        return false;
    }

    /// <summary>How long each processor ran guests (ms of system time), and the IPIs between them.</summary>
    private static void PerCpu(Machine m)
    {
        Log.Write("summary: guest time per CPU:");
        for (int c = 0; c < Smp.Processors.Count; c++)
        {
            Log.Write(c == 0 ? " CPU" : ", CPU"); Log.Dec((ulong)c); Log.Write(" ");
            if (!Smp.Processors.Cpus[c].Joined) { Log.Write("not joined"); continue; }
            Log.Dec(m.Scheduler.CpuBusyTime(c) / 1_000_000); Log.Write(" ms");
        }
        Log.Write("; "); Log.Dec(Smp.Ipi.KicksSent); Log.Write(" kicks, "); Log.Dec(m.Tlb.RemoteFlushes); Log.Write(" TLB-flush IPIs, ");
        Log.Dec(PvCpu.DescheduleWaits); Log.Line(" waits for a paused vCPU to leave its processor");
        ulong entries = 0, waits = 0, spins = 0;
        for (int c = 0; c < Smp.Processors.Count; c++)
        {
            if (c < PvCpu.Entries.Length) entries += PvCpu.Entries[c].Traps;
            waits += Smp.Processors.Cpus[c].Block->LockWaits;
            spins += Smp.Processors.Cpus[c].Block->LockSpins;
        }
        Log.Write("summary: hypervisor lock: "); Log.Dec(waits); Log.Write(" of about "); Log.Dec(entries);
        Log.Write(" entries waited for it, "); Log.Dec(spins); Log.Line(" turns of the wait loop");
    }

    private static string ReasonName(Domain d)
    {
        if (d.State == DomainState.Crashed) return "crashed";
        switch (d.ShutdownReason)
        {
            case Sched.SHUTDOWN_poweroff: return "poweroff";
            case Sched.SHUTDOWN_reboot: return "reboot";
            case Sched.SHUTDOWN_suspend: return "suspend";
            case Sched.SHUTDOWN_crash: return "crash";
            case Sched.SHUTDOWN_watchdog: return "watchdog";
            case Sched.SHUTDOWN_soft_reset: return "soft_reset";
            default: return "shutdown (unknown reason)";
        }
    }

    [System.Runtime.RuntimeImport("*", "debug_in_hypervisor_count")] [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.InternalCall)]
    private static extern ulong DebugInHypervisor();
}
