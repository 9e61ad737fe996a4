using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// Xen's check_descriptor (pv/descriptor-tables.c) for a 64-bit PV guest: which 8-byte descriptors
/// a guest may place in its GDT or LDT. Code and data segments are fine (they can only be used at
/// the guest's own privilege, so their DPL is raised to 3); a call gate must target a guest code
/// selector and gets DPL 0, so using it faults and can be emulated; every other system descriptor
/// (TSS, LDT, interrupt and trap gates) is refused. A not-present descriptor always faults: safe.
/// </summary>
public static class DescriptorCheck
{
    private const uint SegmentType = 0xFu << 8;   // _SEGMENT_TYPE (in the high word)
    private const uint SegmentS = 1u << 12;       // code/data rather than system
    private const uint SegmentDpl = 3u << 13;
    private const uint SegmentP = 1u << 15;
    private const uint CallGate64 = 0xCu << 8;

    /// <summary>The guest kernel's RPL: a 64-bit PV kernel runs in ring 3.</summary>
    public const int GuestKernelRpl = 3;

    /// <summary>__fixup_guest_selector: a selector asking for more privilege than ring 3 gets RPL 3.</summary>
    public static ulong FixupGuestSelector(ulong selector)
        => (selector & 3) >= GuestKernelRpl ? selector : (selector & ~3UL) | GuestKernelRpl;

    /// <summary>
    /// Checks descriptor <paramref name="descriptor"/> (low word a, high word b) and returns in
    /// <paramref name="fixedUp"/> the form to store (DPL raised, call-gate DPL moved into the target
    /// selector's RPL). False when the guest may not have it.
    /// </summary>
    public static bool Check(ulong descriptor, out ulong fixedUp)
    {
        fixedUp = descriptor;
        uint a = (uint)descriptor, b = (uint)(descriptor >> 32);
        if ((b & SegmentP) == 0) return true;

        uint dpl = (b >> 13) & 3;
        if (dpl < GuestKernelRpl) dpl = GuestKernelRpl;
        b = (b & ~SegmentDpl) | (dpl << 13);

        if ((b & SegmentS) == 0)
        {
            // Type 0 is harmless: it is the upper half of a 16-byte call gate.
            if ((b & SegmentType) == 0) return true;
            if ((b & SegmentType) != CallGate64) return false;
            uint cs = a >> 16;
            if (!GateSelectorOkay(cs)) return false;
            b &= ~SegmentDpl;
            cs = (cs & ~3u) | dpl;
            a = (a & 0xFFFF) | (cs << 16);
            if ((b & 0xFF) != 0) return false;     // reserved bits of a 64-bit gate
        }
        fixedUp = (ulong)a | ((ulong)b << 32);
        return true;
    }

    /// <summary>
    /// A CS (<paramref name="code"/>) or SS selector a vCPU's context may start with: Xen's flat ring-3
    /// selectors, or an RPL-3 selector of the vCPU's own GDT (Linux gives its secondary CPUs __KERNEL_CS
    /// and __KERNEL_DS, 0x10 and 0x18, fixed up to 0x13 and 0x1b) whose descriptor there is present and a
    /// 64-bit code segment, or a writable data segment. The first IRETQ into the vCPU then cannot fault.
    /// </summary>
    public static bool ContextSelectorOkay(HAL.PhysicalMemory mem, ulong[] gdtFrames, int gdtEntries, ushort selector, bool code)
    {
        if (code ? selector == Xen.FLAT_RING3_CS64 || selector == Xen.FLAT_RING3_CS32 : selector == Xen.FLAT_RING3_SS64) return true;
        if ((selector & 7) != GuestKernelRpl) return false;                  // a GDT selector with RPL 3
        int index = selector >> 3;
        if (index == 0 || index >= gdtEntries) return false;
        ulong mfn = gdtFrames[index / 512];
        ulong d = mem.Read64((mfn << 12) + (ulong)(index % 512) * 8);
        uint b = (uint)(d >> 32);
        if ((b & SegmentP) == 0 || (b & SegmentS) == 0 || ((b >> 13) & 3) != GuestKernelRpl) return false;
        bool isCode = (b & (1u << 11)) != 0;
        if (code) return isCode && (b & (1u << 21)) != 0 && (b & (1u << 22)) == 0;   // L=1, D=0: 64-bit code
        return !isCode && (b & (1u << 9)) != 0;                                      // writable data
    }

    /// <summary>guest_gate_selector_okay: a guest GDT entry, the flat kernel CS, or any LDT selector.</summary>
    public static bool GateSelectorOkay(uint selector)
    {
        if ((selector >> 3) < ArchX86.FIRST_RESERVED_GDT_ENTRY) return true;
        if (selector == Xen.FLAT_KERNEL_CS64) return true;
        return (selector & 4) != 0;
    }
}
