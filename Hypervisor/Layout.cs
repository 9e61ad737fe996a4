namespace Microhv.Hypervisor;

/// <summary>Where things live in a PV guest's virtual address space that the hypervisor owns.</summary>
public static class Layout
{
    public const ulong PageSize = 4096;
    public const int PageShift = 12;

    /// <summary>L4 slots 256..271: Xen's hypervisor hole 0xFFFF800000000000-0xFFFF880000000000.</summary>
    public const int FirstHypervisorL4Slot = 256, HypervisorL4SlotCount = 16;

    public static bool InHypervisorHole(ulong va) => va >= Public.Xen.HYPERVISOR_VIRT_START && va < Public.Xen.HYPERVISOR_VIRT_END;
    public static bool IsHypervisorL4Slot(int slot) => slot >= FirstHypervisorL4Slot && slot < FirstHypervisorL4Slot + HypervisorL4SlotCount;
}
