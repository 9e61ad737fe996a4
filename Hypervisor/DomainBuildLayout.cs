using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// Where a PV kernel's initial virtual address space puts everything, computed as Xen's
/// dom0_construct_pv does: from VIRT_BASE, the loaded kernel, the p2m list (unless INIT_P2M moves it),
/// the start_info page, the console ring page of a non-initial domain (libxenguest puts its magic pages
/// there), the bootstrap page tables, one boot stack page, then slack up to a 4 MiB boundary with at
/// least 512 KiB to spare. Pseudo-physical frame n backs virtual VStart + n*4K in that region.
/// Every sum is checked: the inputs come from an untrusted image.
/// </summary>
public struct DomainBuildLayout
{
    public const ulong PageSize = 4096;
    private const ulong Align4M = 1UL << 22;
    private const ulong MinSlack = 512UL << 10;

    public ulong VStart, VKernStart, VKernEnd, VirtOffset, Entry;
    /// <summary>The p2m list; when <see cref="P2mSeparate"/> it lies at INIT_P2M outside the bootstrap region.</summary>
    public ulong VPhysmapStart, VPhysmapEnd;
    public bool P2mSeparate;
    public ulong VStartInfoStart;
    /// <summary>Console ring page of a non-initial domain (0 = none).</summary>
    public ulong VConsoleStart;
    public ulong VPtStart, VPtEnd, NrPtPages;
    public ulong VStackStart, VStackEnd, VEnd;
    /// <summary>Pages from VStart to VEnd: pseudo-physical frames 0 .. BootstrapPages-1.</summary>
    public ulong BootstrapPages;
    /// <summary>Pages holding the p2m list (data only, without the tables that map it at INIT_P2M).</summary>
    public ulong P2mPages;
    public ulong HypercallPage;

    public static DomainBuildStatus Compute(in Elf64Image image, in XenElfNotes notes, ulong nrPages, bool consolePage,
        out DomainBuildLayout layout)
    {
        layout = default;
        if (!KernelPhysicalRange(image, out ulong pstart, out ulong pend)) return DomainBuildStatus.SegmentOutsideMemory;

        // libelf's elf_xen_addr_calc_check.
        if (notes.PaddrOffset != XenElfNotes.Unset && notes.VirtBase == XenElfNotes.Unset) return DomainBuildStatus.BadAddresses;
        ulong virtBase = notes.VirtBase == XenElfNotes.Unset ? 0 : notes.VirtBase;
        ulong paddrOffset = notes.PaddrOffset == XenElfNotes.Unset ? 0 : notes.PaddrOffset;
        DomainBuildLayout l = default;
        l.VirtOffset = virtBase - paddrOffset;
        l.VStart = virtBase;
        l.VKernStart = pstart + l.VirtOffset;
        l.VKernEnd = pend + l.VirtOffset;
        l.Entry = notes.Entry == XenElfNotes.Unset ? image.Entry : notes.Entry;
        if (l.VKernStart > l.VKernEnd || l.Entry < l.VKernStart || l.Entry > l.VKernEnd || l.VStart > l.VKernStart)
            return DomainBuildStatus.BadAddresses;
        if (notes.InitP2m != XenElfNotes.Unset && notes.InitP2m >= l.VKernStart && notes.InitP2m < l.VKernEnd)
            return DomainBuildStatus.BadP2mAddress;
        // Frame n maps VStart + n*4K, so the base must be page aligned (Xen expects a superpage-aligned one).
        if ((l.VStart & (PageSize - 1)) != 0) return DomainBuildStatus.BadAddresses;

        // The kernel alone must fit; this also bounds every offset below to well under 2^64.
        ulong memoryBytes = nrPages * PageSize;
        if (l.VKernEnd - l.VStart > memoryBytes) return DomainBuildStatus.NotEnoughMemory;

        ulong off = RoundUp(l.VKernEnd - l.VStart);
        l.P2mPages = (nrPages * 8 + PageSize - 1) / PageSize;
        l.P2mSeparate = notes.InitP2m != XenElfNotes.Unset;
        ulong physmapStart = off, physmapEnd = l.P2mSeparate ? off : off + nrPages * 8;
        ulong startInfo = RoundUp(physmapEnd);
        ulong console = consolePage ? startInfo + PageSize : 0;
        ulong ptStart = startInfo + (consolePage ? 2UL : 1UL) * PageSize;

        // Xen's exhaustive search: the table count depends on the region's size, which depends on it.
        ulong nrPt, stackEnd, end;
        for (nrPt = 2; ; nrPt++)
        {
            if (nrPt > nrPages + 4) return DomainBuildStatus.NotEnoughMemory;
            stackEnd = ptStart + (nrPt + 1) * PageSize;
            if (!Add(l.VStart, stackEnd, out ulong absStackEnd) || !Add(absStackEnd, Align4M - 1, out ulong absEnd))
                return DomainBuildStatus.OverlapsHypervisor;
            absEnd &= ~(Align4M - 1);
            if (absEnd - absStackEnd < MinSlack && !Add(absEnd, Align4M, out absEnd)) return DomainBuildStatus.OverlapsHypervisor;
            if (absEnd == 0) return DomainBuildStatus.OverlapsHypervisor;
            end = absEnd - l.VStart;
            ulong needed = 1 + Spans(l.VStart, absEnd, 39) + Spans(l.VStart, absEnd, 30) + Spans(l.VStart, absEnd, 21);
            if (needed <= nrPt) break;
        }
        l.VPhysmapStart = l.VStart + physmapStart;
        l.VPhysmapEnd = l.VStart + physmapEnd;
        l.VStartInfoStart = l.VStart + startInfo;
        l.VConsoleStart = consolePage ? l.VStart + console : 0;
        l.VPtStart = l.VStart + ptStart;
        l.NrPtPages = nrPt;
        l.VPtEnd = l.VPtStart + nrPt * PageSize;
        l.VStackStart = l.VPtEnd;
        l.VStackEnd = l.VStart + stackEnd;
        l.VEnd = l.VStart + end;
        l.BootstrapPages = end / PageSize;

        if (!CanonicalRange(l.VStart, l.VEnd)) return DomainBuildStatus.BadAddresses;
        if (OverlapsHole(l.VStart, l.VEnd)) return DomainBuildStatus.OverlapsHypervisor;
        if (l.BootstrapPages > nrPages) return DomainBuildStatus.NotEnoughMemory;

        if (l.P2mSeparate)
        {
            ulong p2m = notes.InitP2m;
            if ((p2m & (PageSize - 1)) != 0 || !Add(p2m, l.P2mPages * PageSize, out ulong p2mEnd)) return DomainBuildStatus.BadP2mAddress;
            if (!CanonicalRange(p2m, p2mEnd) || OverlapsHole(p2m, p2mEnd)) return DomainBuildStatus.BadP2mAddress;
            // Xen's "P->M table overlaps initial mapping" check (inclusive ends, as Xen writes it).
            if (l.VStart <= p2mEnd && p2m <= l.VEnd) return DomainBuildStatus.BadP2mAddress;
            l.VPhysmapStart = p2m;
            l.VPhysmapEnd = p2m + nrPages * 8;
            ulong tables = Spans(p2m, p2mEnd, 39) + Spans(p2m, p2mEnd, 30) + Spans(p2m, p2mEnd, 21);
            if (l.BootstrapPages + l.P2mPages + tables > nrPages) return DomainBuildStatus.NotEnoughMemory;
        }

        l.HypercallPage = notes.HypercallPage;
        if (l.HypercallPage != XenElfNotes.Unset)
        {
            // Xen only checks [v_start, v_end); the page tables are excluded too so the stubs cannot overwrite them.
            if (l.HypercallPage < l.VStart || l.HypercallPage >= l.VEnd || (l.HypercallPage & (PageSize - 1)) != 0
                || (l.HypercallPage >= l.VPtStart && l.HypercallPage < l.VPtEnd))
                return DomainBuildStatus.BadHypercallPage;
        }
        layout = l;
        return DomainBuildStatus.Ok;
    }

    /// <summary>libelf's pstart/pend: lowest p_paddr and highest p_paddr+p_memsz of the loadable segments.</summary>
    public static bool KernelPhysicalRange(in Elf64Image image, out ulong pstart, out ulong pend)
    {
        pstart = 0xFFFF_FFFF_FFFF_FFFF;
        pend = 0;
        for (int i = 0; i < image.ProgramHeaderCount; i++)
        {
            if (image.GetProgramHeader(i, out Elf64ProgramHeader ph) != Elf64Status.Ok)
            {
                if (ph.Type == Elf64ProgramHeader.PT_LOAD) return false;
                continue;
            }
            if (!IsLoadable(ph)) continue;
            if (!Add(ph.PhysicalAddress, ph.MemorySize, out ulong segmentEnd)) return false;
            if (ph.PhysicalAddress < pstart) pstart = ph.PhysicalAddress;
            if (segmentEnd > pend) pend = segmentEnd;
        }
        return pend != 0 || pstart == 0;
    }

    public static bool IsLoadable(in Elf64ProgramHeader ph)
        => ph.Type == Elf64ProgramHeader.PT_LOAD && (ph.Flags & (Elf64ProgramHeader.PF_R | Elf64ProgramHeader.PF_W | Elf64ProgramHeader.PF_X)) != 0;

    /// <summary>Number of 2^shift-sized slots [low, high) touches (Xen's NR macro), for high &gt; low.</summary>
    public static ulong Spans(ulong low, ulong high, int shift) => high <= low ? 0 : ((high - 1) >> shift) - (low >> shift) + 1;

    private static ulong RoundUp(ulong x) => (x + PageSize - 1) & ~(PageSize - 1);

    private static bool Add(ulong a, ulong b, out ulong sum)
    {
        sum = a + b;
        return sum >= a;
    }

    /// <summary>[start, end) lies in one canonical half (end exclusive; end 0 means the top of the space).</summary>
    private static bool CanonicalRange(ulong start, ulong end)
    {
        if (end <= start && end != 0) return false;
        ulong last = end - 1;
        if (!PageTableEntry.IsCanonical(start) || !PageTableEntry.IsCanonical(last)) return false;
        return (start >> 47) == (last >> 47);
    }

    private static bool OverlapsHole(ulong start, ulong end)
        => start < Xen.HYPERVISOR_VIRT_END && (end == 0 || end > Xen.HYPERVISOR_VIRT_START);
}
