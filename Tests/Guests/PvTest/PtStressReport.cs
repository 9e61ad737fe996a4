namespace Microhv.Guests.PvTest;

/// <summary>pt-stress's verdict (PtStress.cs): each failure by its code, and the result line vCPU 0 prints with
/// every vCPU's counts summed.</summary>
internal static unsafe partial class PtStress
{
    private static string What(ulong what)
    {
        switch (what)
        {
            case 1: return "set_trap_table failed";
            case 2: return "a write through a fresh writable mapping faulted";
            case 3: return "unmapping the writable mapping failed";
            case 4: return "writable map of a contested frame: neither 0 nor -EBUSY";
            case 5: return "a stale writable translation wrote the table this vCPU had just pinned";
            case 6: return "unpinning its own pin failed";
            case 7: return "a stale writable translation survived another vCPU's pin of the frame";
            case 8: return "pin: neither 0 nor -EINVAL";
            case 9: return "update_va_mapping UVMF_INVLPG|UVMF_ALL of a data frame failed";
            case 10: return "read-only mmu_update of a data frame failed";
            case 11: return "the word written through the writable mapping did not read back";
            case 12: return "unmapping a data frame (vCPU mask) failed";
            case 13: return "TLB_FLUSH_MULTI failed";
            case 14: return "a writable mapping of a pinned table was not refused with -EBUSY";
            case 15: return "read-only map of its pinned table failed";
            case 16: return "mmu_update of an entry of its pinned table failed";
            case 17: return "the entry written into its pinned table did not read back";
            case 18: return "its pinned table holds an entry nobody wrote, index";
            case 19: return "a move on the chaos frames: neither 0 nor the refusal another vCPU's move explains";
            case 20: return "a translation through a table it had unhooked survived the table becoming writable";
            case 21: return "hooking or unhooking its pinned table in the L2 failed";
            case 22: return "a read through its hooked table faulted";
            case 99: return "did not finish within 20 minutes";
            default: return "unknown failure";
        }
    }

    private static void Report()
    {
        ulong* sum = stackalloc ulong[VcpuWords];
        for (int i = 0; i < VcpuWords; i++) sum[i] = 0;
        int failed = 0;
        for (int v = 0; v < s_vcpus; v++)
        {
            ulong* s = Stats(v);
            for (int i = Rounds; i <= StaleReads; i++) sum[i] += s[i];
            if (s[FailWhat] == 0) continue;
            failed++;
            XenConsole.Write("pvtest: workload pt-stress: vCPU "); XenConsole.Dec(v); XenConsole.Write(" round ");
            XenConsole.Udec(s[FailRound]); XenConsole.Write(": "); XenConsole.Write(What(s[FailWhat]));
            XenConsole.Write(" ("); XenConsole.Dec((long)s[FailRc]); XenConsole.Line(")");
        }
        XenConsole.Write(failed == 0 ? "pvtest: workload pt-stress done, " : "pvtest: workload pt-stress FAILED, ");
        XenConsole.Dec(s_vcpus); XenConsole.Write(" vCPUs x "); XenConsole.Dec(s_rounds); XenConsole.Write(" rounds: ");
        XenConsole.Udec(sum[PinsOk]); XenConsole.Write(" pins ("); XenConsole.Udec(sum[PinsRefused]); XenConsole.Write(" refused), ");
        XenConsole.Udec(sum[MapsOk]); XenConsole.Write(" writable maps ("); XenConsole.Udec(sum[MapsRefused]); XenConsole.Write(" refused), ");
        XenConsole.Write("stale writes faulted: "); XenConsole.Udec(sum[StaleOwn]); XenConsole.Write(" after its own pin, ");
        XenConsole.Udec(sum[StaleOther]); XenConsole.Write(" after another vCPU's; stale table reads faulted: ");
        XenConsole.Udec(sum[StaleReads]); XenConsole.Write("; "); XenConsole.Udec(sum[DataChecks]);
        XenConsole.Write(" data checks, "); XenConsole.Udec(sum[ChaosOk]); XenConsole.Write(" chaos moves done, ");
        XenConsole.Udec(sum[Flushes]); XenConsole.Write(" TLB_FLUSH_MULTI, ");
        XenConsole.Dec(failed); XenConsole.Line(" failures");
        Hypercall.Shutdown(failed == 0 ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }
}
