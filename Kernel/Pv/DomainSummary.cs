using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Kernel.Console;

namespace Microhv.Kernel.Pv;

/// <summary>When every domain has shut down: one line per domain (exit reason, code, hypercalls by
/// number), then the machine stops — QEMU exits through isa-debug-exit when asked.</summary>
internal static class DomainSummary
{
    public static void PrintAndExit(Machine m)
    {
        bool allPoweroff = true;
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
                Log.Write(" "); Log.Write(HypercallName(n)); Log.Write("="); Log.Dec(d.HypercallCounts[n]);
                total += d.HypercallCounts[n];
            }
            if (d.UnknownHypercalls != 0) { Log.Write(" unknown="); Log.Dec(d.UnknownHypercalls); }
            Log.Write(" total="); Log.Dec(total + d.UnknownHypercalls); Log.Line();
            if (d.State != DomainState.Shutdown || d.ShutdownReason != Sched.SHUTDOWN_poweroff) allPoweroff = false;
        }
        ulong heap = Internal.Runtime.KernelHeap.Allocated;
        Log.Write("summary: "); Log.Dec(PvCpu.Traps); Log.Write(" traps, "); Log.Dec(PvCpu.Hypercalls); Log.Write(" hypercalls, ");
        Log.Dec(PvCpu.Scheduler.Switches); Log.Write(" vCPU switches; managed heap "); Log.Dec(PvCpu.HeapAtStart);
        Log.Write(" bytes at guest start, +"); Log.Dec(heap - PvCpu.HeapAtStart); Log.Line(" while guests ran");
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

    public static string HypercallName(int n)
    {
        switch (n)
        {
            case 0: return "set_trap_table"; case 1: return "mmu_update"; case 2: return "set_gdt"; case 3: return "stack_switch";
            case 4: return "set_callbacks"; case 5: return "fpu_taskswitch"; case 6: return "sched_op_compat"; case 7: return "platform_op";
            case 8: return "set_debugreg"; case 9: return "get_debugreg"; case 10: return "update_descriptor"; case 12: return "memory_op";
            case 13: return "multicall"; case 14: return "update_va_mapping"; case 15: return "set_timer_op"; case 16: return "event_channel_op_compat";
            case 17: return "xen_version"; case 18: return "console_io"; case 19: return "physdev_op_compat"; case 20: return "grant_table_op";
            case 21: return "vm_assist"; case 22: return "update_va_mapping_otherdomain"; case 23: return "iret"; case 24: return "vcpu_op";
            case 25: return "set_segment_base"; case 26: return "mmuext_op"; case 27: return "xsm_op"; case 28: return "nmi_op";
            case 29: return "sched_op"; case 30: return "callback_op"; case 31: return "xenoprof_op"; case 32: return "event_channel_op";
            case 33: return "physdev_op"; case 34: return "hvm_op"; case 35: return "sysctl"; case 36: return "domctl";
            case 37: return "kexec_op"; case 38: return "tmem_op"; case 39: return "argo_op"; case 40: return "xenpmu_op";
            case 41: return "dm_op"; case 42: return "hypfs_op";
            default: return "hypercall";
        }
    }
}
