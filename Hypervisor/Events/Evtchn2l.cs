using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// The 2-level event ABI (xen/common/event_2l.c), every domain's until it calls EVTCHNOP_init_control:
/// a port's pending and mask bits are bit <c>port</c> of shared_info's evtchn_pending[] and evtchn_mask[],
/// and a port becoming pending and unmasked sets its word's bit in the notified vCPU's evtchn_pending_sel.
/// </summary>
public static class Evtchn2l
{
    private static ulong WordAddress(Domain d, int area, int port)
        => (d.SharedInfoMfn << Layout.PageShift) + (ulong)area + (ulong)(port >> 6) * 8;

    private static bool TestBit(Domain d, int area, int port)
    {
        if (d.SharedInfoMfn == 0) return false;
        return (d.Machine.Memory.Read64(WordAddress(d, area, port)) & (1UL << (port & 63))) != 0;
    }

    /// <summary>Atomically sets (or clears) one bit, as Xen's guest_test_and_set_bit: the guest's vCPUs change
    /// the same words on other processors. Returns its previous value.</summary>
    private static bool ChangeBit(Domain d, int area, int port, bool set)
    {
        if (d.SharedInfoMfn == 0) return false;
        PhysicalMemory mem = d.Machine.Memory;
        ulong address = WordAddress(d, area, port);
        ulong bit = 1UL << (port & 63);
        return ((set ? mem.Or64(address, bit) : mem.Clear64(address, bit)) & bit) != 0;
    }

    public static bool IsPending(Domain d, int port) => TestBit(d, SharedInfo.evtchn_pending, port);
    public static bool IsMasked(Domain d, int port) => TestBit(d, SharedInfo.evtchn_mask, port);

    /// <summary>
    /// evtchn_2l_set_pending: set the pending bit; if it was clear and the port is unmasked, set the
    /// selector bit and, if that was clear, raise the upcall and wake the vCPU. Returns whether the bit
    /// was newly set (then pollers of the port wake, masked or not). The port's pending and mask words are
    /// found once and changed atomically through the direct map (the hot half of every event send); the vCPU to
    /// notify (<paramref name="notifyVcpu"/>[port]) is looked up only when the port is unmasked.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool SetPending(Domain d, byte[] notifyVcpu, int port)
    {
        ulong mfn = d.SharedInfoMfn;
        if (mfn == 0) return false;
        PhysicalMemory mem = d.Machine.Memory;
        ulong word = (mfn << Layout.PageShift) + (ulong)(port >> 6) * 8;
        ulong bit = 1UL << (port & 63);
        if (mem.TestAndSetBit64(word + SharedInfo.evtchn_pending, port & 63)) return false;
        if ((mem.Read64(word + SharedInfo.evtchn_mask) & bit) == 0) VcpuInfo.RaiseSelector(d.Vcpus[notifyVcpu[port]], port >> 6);
        return true;
    }

    public static void ClearPending(Domain d, int port) => ChangeBit(d, SharedInfo.evtchn_pending, port, false);

    /// <summary>evtchn_2l_unmask: clearing a set mask on a pending port delivers it now.</summary>
    public static void Unmask(Domain d, Vcpu notify, int port)
    {
        if (ChangeBit(d, SharedInfo.evtchn_mask, port, false) && TestBit(d, SharedInfo.evtchn_pending, port))
            VcpuInfo.RaiseSelector(notify, port >> 6);
    }
}
