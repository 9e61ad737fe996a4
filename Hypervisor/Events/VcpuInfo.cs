using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// Where a vCPU's vcpu_info lives and its event flags: slot 0 of shared_info until the guest moves
/// it with VCPUOP_register_vcpu_info. The page is guest-writable, so every value read here is only
/// a hint the guest controls; nothing read from it is used as an address or a count.
/// </summary>
public static class VcpuInfo
{
    /// <summary>Machine address of the vCPU's vcpu_info, or 0 when the domain has no shared_info yet.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static ulong Address(Vcpu v)
    {
        if (v.VcpuInfoAddress != 0) return v.VcpuInfoAddress;
        ulong mfn = v.Domain.SharedInfoMfn;
        if (mfn == 0 || v.Id >= SharedInfo.XEN_LEGACY_MAX_VCPUS) return 0;
        return (mfn << Layout.PageShift) + SharedInfo.vcpu_info + (ulong)v.Id * SharedInfo.vcpu_info_size;
    }

    public static byte UpcallPending(Vcpu v)
    {
        ulong a = Address(v);
        return a == 0 ? (byte)0 : v.Domain.Machine.Memory.Read8(a + SharedInfo.evtchn_upcall_pending);
    }

    public static byte UpcallMask(Vcpu v)
    {
        ulong a = Address(v);
        return a == 0 ? (byte)1 : v.Domain.Machine.Memory.Read8(a + SharedInfo.evtchn_upcall_mask);
    }

    /// <summary>Xen's local_event_delivery_enable: SCHEDOP_block re-enables upcalls before sleeping.</summary>
    public static void EnableDelivery(Vcpu v)
    {
        ulong a = Address(v);
        if (a != 0) v.Domain.Machine.Memory.Write8(a + SharedInfo.evtchn_upcall_mask, 0);
    }

    /// <summary>Xen's test_and_set_bit of selector bit <paramref name="word"/> and, when it was clear,
    /// vcpu_mark_events_pending: the second half of a port becoming pending and unmasked.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static void RaiseSelector(Vcpu v, int word)
    {
        ulong a = Address(v);
        if (a == 0) return;
        PhysicalMemory mem = v.Domain.Machine.Memory;
        if (mem.TestAndSetBit64(a + SharedInfo.evtchn_pending_sel, word)) return;   // the guest's vCPUs xchg it meanwhile
        MarkEventsPending(v, a, mem);
    }

    /// <summary>Xen's vcpu_mark_events_pending: raise evtchn_upcall_pending and kick the vCPU if it
    /// was clear. A blocked vCPU wakes; the upcall itself is bounced when it next returns to the guest.</summary>
    public static void MarkEventsPending(Vcpu v)
    {
        ulong a = Address(v);
        if (a != 0) MarkEventsPending(v, a, v.Domain.Machine.Memory);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void MarkEventsPending(Vcpu v, ulong a, PhysicalMemory mem)
    {
        if (mem.Read8(a + SharedInfo.evtchn_upcall_pending) != 0) return;
        mem.Write8(a + SharedInfo.evtchn_upcall_pending, 1);
        EventChannels.Wake(v);
    }
}
