using Microhv.HAL;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// Builds a PV domain from a Xen PV kernel ELF image lying in machine memory, as Xen's
/// dom0_construct_pv (and libxenguest for other domains) does: parse the Xen notes, take the
/// domain's frames, build the bootstrap page tables in them, load the segments, write the p2m list,
/// the hypercall page and start_info, and set the vCPU to enter the kernel. On failure every frame
/// goes back and no domain is registered.
/// </summary>
public static class DomainBuilder
{
    /// <summary>XENFEAT_* bits Microhv provides to a guest that requires them.</summary>
    public const uint SupportedFeatures = (1u << Features.XENFEAT_writable_page_tables)
        | (1u << Features.XENFEAT_pae_pgdir_above_4gb) | (1u << Features.XENFEAT_dom0);

    /// <summary>Xen's X86_EFLAGS_IF plus the always-one bit 1: events are masked through vcpu_info instead.</summary>
    public const ulong EntryRflags = 0x202;

    public static DomainBuildStatus Build(Machine m, ushort domainId, ulong imageAddress, ulong imageLength, ulong nrPages,
        bool initialDomain, byte[] cmdline, int cmdlineLength, out Domain domain)
        => Build(m, domainId, imageAddress, imageLength, nrPages, initialDomain, cmdline, cmdlineLength, 0, 0, out domain);

    /// <summary>As above, with an initial ramdisk (initrdLength 0: none) copied into the domain's memory.</summary>
    public static DomainBuildStatus Build(Machine m, ushort domainId, ulong imageAddress, ulong imageLength, ulong nrPages,
        bool initialDomain, byte[] cmdline, int cmdlineLength, ulong initrdAddress, ulong initrdLength, out Domain domain)
    {
        domain = null;
        if (m.DomainCount >= Machine.MaxDomains) return DomainBuildStatus.DomainTableFull;
        if (m.FindDomain(domainId) != null || domainId >= FrameTable.OwnerXen) return DomainBuildStatus.DomainIdInUse;
        if (Elf64Image.Parse(m.Memory, imageAddress, imageLength, out Elf64Image image) != Elf64Status.Ok)
            return DomainBuildStatus.NotElf64X86;

        DomainBuildStatus status = XenElfNotes.Parse(image, out XenElfNotes notes);
        if (status != DomainBuildStatus.Ok) return status;
        if (notes.Count == 0) return DomainBuildStatus.NoXenNotes;
        if (!notes.XenVersion.StartsWith(m.Memory, "xen-3.0")) return DomainBuildStatus.NotForXen30;
        if ((notes.FeaturesRequired & ~SupportedFeatures) != 0) return DomainBuildStatus.RequiresUnsupportedFeature;
        if (initialDomain && notes.HasSupportedFeaturesNote && (notes.FeaturesSupported & (1u << Features.XENFEAT_dom0)) == 0)
            return DomainBuildStatus.NoInitialDomainSupport;
        if (nrPages == 0 || nrPages > m.FrameTable.FrameCount) return DomainBuildStatus.NotEnoughMemory;
        if (initrdLength != 0 && !notes.ModStartPfn) return DomainBuildStatus.InitrdNeedsModStartPfn;
        if (initrdLength != 0 && !m.Memory.Contains(initrdAddress, initrdLength)) return DomainBuildStatus.BadInitrd;

        status = DomainBuildLayout.Compute(image, notes, nrPages, !initialDomain, out DomainBuildLayout layout);
        if (status != DomainBuildStatus.Ok) return status;

        Domain d = new Domain(m, domainId);
        d.IsInitialDomain = initialDomain;
        d.NrPages = nrPages;
        d.MaxPages = nrPages;
        d.P2m = new ulong[nrPages];
        for (ulong pfn = 0; pfn < nrPages; pfn++) d.P2m[pfn] = Domain.Invalid;
        if (!AllocateFrames(m, d, out ulong sharedInfoMfn))
        {
            Release(m, d, sharedInfoMfn);
            return DomainBuildStatus.OutOfFrames;
        }
        d.SharedInfoMfn = sharedInfoMfn;

        status = Lay(m, d, image, notes, layout, cmdline, cmdlineLength, initrdAddress, initrdLength, out ulong l4Mfn);
        if (status != DomainBuildStatus.Ok)
        {
            Release(m, d, sharedInfoMfn);
            return status;
        }

        // Nothing below can fail: the domain becomes visible to the machine.
        for (ulong pfn = 0; pfn < nrPages; pfn++) m.SetM2p(d.P2m[pfn], pfn);
        SetUpConsoleRing(m, d, layout);
        SetEntryState(d, layout, l4Mfn);
        m.AddDomain(d);
        domain = d;
        return DomainBuildStatus.Ok;
    }

    /// <summary>One line for the hypervisor console.</summary>
    public static string StatusName(DomainBuildStatus status)
    {
        switch (status)
        {
            case DomainBuildStatus.Ok: return "ok";
            case DomainBuildStatus.NotElf64X86: return "not an ELF64 x86-64 image";
            case DomainBuildStatus.NoXenNotes: return "no Xen ELF notes";
            case DomainBuildStatus.NotForXen30: return "not built for Xen 3.0 (XEN_VERSION note)";
            case DomainBuildStatus.BadNotes: return "requires a feature Xen does not know";
            case DomainBuildStatus.RequiresUnsupportedFeature: return "requires unsupported feature";
            case DomainBuildStatus.NoInitialDomainSupport: return "kernel does not support running as the initial domain";
            case DomainBuildStatus.BadAddresses: return "ELF start or entry out of bounds";
            case DomainBuildStatus.SegmentOutsideMemory: return "segment outside the domain's memory";
            case DomainBuildStatus.OverlapsHypervisor: return "image overlaps the hypervisor's virtual range";
            case DomainBuildStatus.BadAbiRomRequest: return "bad Microhv ABI_ROM note (the address must be 2 MiB aligned, above the hypervisor's range, and not in use)";
            case DomainBuildStatus.BadP2mAddress: return "INIT_P2M address unusable";
            case DomainBuildStatus.BadHypercallPage: return "HYPERCALL_PAGE outside the initial mapping";
            case DomainBuildStatus.NotEnoughMemory: return "not enough memory";
            case DomainBuildStatus.OutOfFrames: return "machine has no free frames left";
            case DomainBuildStatus.DomainTableFull: return "domain table full";
            case DomainBuildStatus.DomainIdInUse: return "domain id in use";
            case DomainBuildStatus.ValidationFailed: return "bootstrap page tables failed validation";
            case DomainBuildStatus.InitrdNeedsModStartPfn: return "an initrd needs a kernel with the MOD_START_PFN note";
            case DomainBuildStatus.BadInitrd: return "initrd outside machine memory";
            default: return "unknown build failure";
        }
    }

    /// <summary>Takes nrPages zeroed frames for the pseudo-physical map and one for shared_info, all owned by the domain.</summary>
    private static bool AllocateFrames(Machine m, Domain d, out ulong sharedInfoMfn)
    {
        sharedInfoMfn = Domain.Invalid;
        for (ulong pfn = 0; pfn < d.NrPages; pfn++)
        {
            if (!TakeFrame(m, d.DomainId, out ulong mfn)) return false;
            d.P2m[pfn] = mfn;
        }
        if (!TakeFrame(m, d.DomainId, out ulong shared)) return false;
        sharedInfoMfn = shared;
        return true;
    }

    /// <summary>One zeroed frame from the machine's pool, owned by <paramref name="owner"/> with no type or reference.</summary>
    public static bool TakeFrame(Machine m, ushort owner, out ulong mfn)
    {
        mfn = Domain.Invalid;
        if (!m.Frames.TryAllocateFrame(out ulong address)) return false;
        ulong frame = address >> Layout.PageShift;
        if ((address & (Layout.PageSize - 1)) != 0 || !m.FrameTable.IsValid(frame) || !m.Memory.Contains(address, Layout.PageSize))
        {
            GiveBack(m, address); // unusable for a guest: outside the frame table
            return false;
        }
        m.FrameTable.SetOwner(frame, owner);
        m.FrameTable.SetType(frame, FrameType.None, 0);
        m.FrameTable.SetRefCount(frame, 0);
        m.FrameTable.SetPinned(frame, false);
        for (ulong i = 0; i < Layout.PageSize; i += 8) m.Memory.Write64(address + i, 0);
        mfn = frame;
        return true;
    }

    /// <summary>Lays out the guest's memory; any failure leaves the frames for <see cref="Release"/>.</summary>
    private static DomainBuildStatus Lay(Machine m, Domain d, in Elf64Image image, in XenElfNotes notes, in DomainBuildLayout layout,
        byte[] cmdline, int cmdlineLength, ulong initrdAddress, ulong initrdLength, out ulong l4Mfn)
    {
        if (!DomainBuildPageTables.BuildBootstrap(m, d, layout, out l4Mfn)) return DomainBuildStatus.NotEnoughMemory;
        ulong l4 = l4Mfn << Layout.PageShift;
        for (int i = 0; i < Layout.HypervisorL4SlotCount; i++)
            m.Memory.Write64(l4 + (ulong)(Layout.FirstHypervisorL4Slot + i) * 8, m.HypervisorL4Slots[i]);

        ulong firstP2mPfn = (layout.VPhysmapStart - layout.VStart) / Layout.PageSize, nrP2mFrames = layout.P2mPages;
        if (layout.P2mSeparate)
        {
            firstP2mPfn = layout.BootstrapPages;
            if (!DomainBuildPageTables.MapSeparateP2m(m, d, layout, l4Mfn, firstP2mPfn, out nrP2mFrames))
                return DomainBuildStatus.NotEnoughMemory;
        }

        LoadSegments(m, d, image, layout);
        WriteP2mList(m, d, layout, l4);
        if (layout.HypercallPage != XenElfNotes.Unset)
            HypercallPage.Initialise(m.Memory, BootstrapAddress(d, layout, layout.HypercallPage));
        WriteStartInfo(m, d, notes, layout, firstP2mPfn, nrP2mFrames, cmdline, cmdlineLength);
        ulong firstFreePfn = layout.P2mSeparate ? firstP2mPfn + nrP2mFrames : layout.BootstrapPages;
        if (initrdLength != 0 && !LoadInitrd(m, d, layout, firstFreePfn, initrdAddress, initrdLength))
            return DomainBuildStatus.NotEnoughMemory;
        WriteSharedInfo(m, d);
        // A guest that carries Microhv's ABI_ROM note gets the ROM (and its data page) mapped into its
        // bootstrap tables before they are validated. The guest checks the version itself and falls
        // back to the hypercall API if it wants one this ROM is not.
        if (AbiRom.FindRequest(image, out ulong romVa, out ushort major, out ushort minor))
        {
            d.Vcpu.GuestTable = l4;
            if (AbiRom.MapInto(d, romVa, 0) != 0) return DomainBuildStatus.BadAbiRomRequest;
            d.AbiRomAddress = romVa == 0 ? Public.AbiRomLayout.DefaultVirtualAddress : romVa;
            d.AbiRomRequestedMajor = major;
            d.AbiRomRequestedMinor = minor;
        }
        return SetFrameTypes(m, d, l4Mfn);
    }

    /// <summary>Machine address of a virtual address inside the bootstrap region.</summary>
    private static ulong BootstrapAddress(Domain d, in DomainBuildLayout layout, ulong va)
    {
        ulong offset = va - layout.VStart;
        return (d.P2m[offset >> Layout.PageShift] << Layout.PageShift) | (offset & (Layout.PageSize - 1));
    }

    /// <summary>Copies each loadable segment to p_paddr + (VIRT_BASE - PADDR_OFFSET) and zeroes its bss, page by page.</summary>
    private static void LoadSegments(Machine m, Domain d, in Elf64Image image, in DomainBuildLayout layout)
    {
        for (int i = 0; i < image.ProgramHeaderCount; i++)
        {
            if (image.GetProgramHeader(i, out Elf64ProgramHeader ph) != Elf64Status.Ok || !DomainBuildLayout.IsLoadable(ph)) continue;
            ulong va = ph.PhysicalAddress + layout.VirtOffset;
            ulong done = 0;
            while (done < ph.MemorySize)
            {
                ulong target = BootstrapAddress(d, layout, va + done);
                ulong chunk = Layout.PageSize - ((va + done) & (Layout.PageSize - 1));
                if (chunk > ph.MemorySize - done) chunk = ph.MemorySize - done;
                if (done < ph.FileSize)
                {
                    ulong copy = ph.FileSize - done < chunk ? ph.FileSize - done : chunk;
                    m.Memory.Copy(target, image.Address + ph.Offset + done, copy);
                    if (copy < chunk) m.Memory.Fill(target + copy, 0, chunk - copy);
                }
                else m.Memory.Fill(target, 0, chunk);
                done += chunk;
            }
        }
    }

    /// <summary>Writes mfn_list: entry n is the machine frame of pseudo-physical frame n, reached through the new tables.</summary>
    private static void WriteP2mList(Machine m, Domain d, in DomainBuildLayout layout, ulong l4)
    {
        const ulong perPage = Layout.PageSize / 8;
        for (ulong first = 0; first < d.NrPages; first += perPage)
        {
            PageTable.Translate(m.Memory, l4, layout.VPhysmapStart + first * 8, out ulong page, out ulong _, out PageSize _);
            for (ulong n = 0; n < perPage && first + n < d.NrPages; n++) m.Memory.Write64(page + n * 8, d.P2m[first + n]);
        }
    }

    /// <summary>
    /// Xen's unmapped initrd (the kernel has XEN_ELFNOTE_MOD_START_PFN): the ramdisk goes into the
    /// pseudo-physical frames right after everything the builder used, outside the initial mapping,
    /// and start_info names its first PFN in mod_start with SIF_MOD_START_PFN.
    /// </summary>
    private static bool LoadInitrd(Machine m, Domain d, in DomainBuildLayout layout, ulong firstPfn, ulong address, ulong length)
    {
        ulong pages = (length + Layout.PageSize - 1) >> Layout.PageShift;
        if (firstPfn > d.NrPages || pages > d.NrPages - firstPfn) return false;
        for (ulong i = 0; i < pages; i++)
        {
            ulong chunk = length - i * Layout.PageSize < Layout.PageSize ? length - i * Layout.PageSize : Layout.PageSize;
            m.Memory.Copy(d.P2m[firstPfn + i] << Layout.PageShift, address + i * Layout.PageSize, chunk);
        }
        ulong si = BootstrapAddress(d, layout, layout.VStartInfoStart);
        m.Memory.Write64(si + StartInfo.mod_start, firstPfn);
        m.Memory.Write64(si + StartInfo.mod_len, length);
        m.Memory.Write32(si + StartInfo.flags, m.Memory.Read32(si + StartInfo.flags) | Xen.SIF_MOD_START_PFN);
        return true;
    }

    private static void WriteStartInfo(Machine m, Domain d, in XenElfNotes notes, in DomainBuildLayout layout,
        ulong firstP2mPfn, ulong nrP2mFrames, byte[] cmdline, int cmdlineLength)
    {
        ulong si = BootstrapAddress(d, layout, layout.VStartInfoStart);
        // Xen's dom0 builder appends 'p' for a PAE kernel; libxenguest writes the plain guest type.
        string magic = d.IsInitialDomain && notes.Pae ? "xen-3.0-x86_64p" : StartInfo.Magic;
        for (int i = 0; i < magic.Length; i++) m.Memory.Write8(si + StartInfo.magic + (ulong)i, (byte)magic[i]);
        m.Memory.Write64(si + StartInfo.nr_pages, d.NrPages);
        m.Memory.Write64(si + StartInfo.shared_info, d.SharedInfoMfn << Layout.PageShift);
        m.Memory.Write32(si + StartInfo.flags, d.IsInitialDomain ? Xen.SIF_PRIVILEGED | Xen.SIF_INITDOMAIN : 0);
        m.Memory.Write64(si + StartInfo.pt_base, layout.VPtStart);
        m.Memory.Write64(si + StartInfo.nr_pt_frames, layout.NrPtPages);
        m.Memory.Write64(si + StartInfo.mfn_list, layout.VPhysmapStart);
        m.Memory.Write64(si + StartInfo.first_p2m_pfn, firstP2mPfn);
        m.Memory.Write64(si + StartInfo.nr_p2m_frames, nrP2mFrames);
        // Xen's dom0 builder: the screen's description right after start_info, in the same page.
        if (d.IsInitialDomain && m.VgaConsole.Present)
        {
            m.VgaConsole.WriteTo(m.Memory, si + StartInfo.size);
            m.Memory.Write32(si + StartInfo.console_dom0_info_off, StartInfo.size);
            m.Memory.Write32(si + StartInfo.console_dom0_info_size, Dom0VgaConsoleInfo.size);
        }

        int length = 0;
        int limit = cmdline == null ? 0 : (cmdlineLength < cmdline.Length ? cmdlineLength : cmdline.Length);
        if (limit > StartInfo.MAX_GUEST_CMDLINE - 1) limit = StartInfo.MAX_GUEST_CMDLINE - 1;
        while (length < limit && cmdline[length] != 0)
        {
            m.Memory.Write8(si + StartInfo.cmd_line + (ulong)length, cmdline[length]);
            d.CommandLine[length] = cmdline[length];
            length++;
        }
        d.CommandLineLength = length;
    }

    /// <summary>Xen masks upcalls on every vcpu_info of a new domain; the guest unmasks when it is ready.</summary>
    public static void WriteSharedInfo(Machine m, Domain d)
    {
        ulong shared = d.SharedInfoMfn << Layout.PageShift;
        for (int i = 0; i < SharedInfo.XEN_LEGACY_MAX_VCPUS; i++)
            m.Memory.Write8(shared + (ulong)(i * SharedInfo.vcpu_info_size + SharedInfo.evtchn_upcall_mask), 1);
    }

    /// <summary>
    /// Types the bootstrap tree the way a guest's own tables are typed: taking the L4 as the vCPU's
    /// guest_table validates it, and with it every table it reaches (each entry takes its references:
    /// a type reference on the child table, a writable type on every page mapped writable, a general
    /// reference on every page mapped read-only). Then the L4 is pinned, as Xen pins it. shared_info
    /// keeps a writable type for as long as it exists, as Xen's share_xen_page_with_guest does.
    /// </summary>
    private static DomainBuildStatus SetFrameTypes(Machine m, Domain d, ulong l4Mfn)
    {
        if (PageTypes.GetPageAndType(m, d, l4Mfn, FrameType.L4PageTable) != 0) return DomainBuildStatus.ValidationFailed;
        if (PageTypes.GetPageAndType(m, d, l4Mfn, FrameType.L4PageTable) != 0) return DomainBuildStatus.ValidationFailed;
        m.FrameTable.SetPinned(l4Mfn, true);
        m.FrameTable.SetType(d.SharedInfoMfn, FrameType.Writable, 1);
        m.FrameTable.SetValidated(d.SharedInfoMfn, true);
        return DomainBuildStatus.Ok;
    }

    /// <summary>The ring page libxenguest gives a non-initial domain, with its event channel to the hypervisor,
    /// held writable for the hypervisor's writes.</summary>
    private static void SetUpConsoleRing(Machine m, Domain d, in DomainBuildLayout layout)
    {
        if (layout.VConsoleStart == 0) return;
        ulong si = BootstrapAddress(d, layout, layout.VStartInfoStart);
        int port = d.EventChannels.BindConsolePort();
        if (port < 0) return; // no console ring: start_info keeps 0 for mfn and evtchn
        ulong mfn = d.P2m[(layout.VConsoleStart - layout.VStart) >> Layout.PageShift];
        m.Memory.Write64(si + StartInfo.console_domU_mfn, mfn);
        m.Memory.Write32(si + StartInfo.console_domU_evtchn, (uint)port);
        d.ConsoleRingMfn = mfn;
        d.ConsoleEvtchn = port;
        // The backend's own writable reference (xenconsoled keeps the ring mapped): the hypervisor writes
        // out_cons and in[] by machine address, so the page must never become a page table or descriptor page.
        PageTypes.GetPageAndType(m, d, mfn, FrameType.Writable);
    }

    /// <summary>Xen's initial registers: rip = entry, rsi = start_info, rsp = top of the boot stack, flat ring-3 selectors.</summary>
    private static void SetEntryState(Domain d, in DomainBuildLayout layout, ulong l4Mfn)
    {
        Vcpu v = d.Vcpu;
        v.Regs = default;
        v.Regs.Rip = layout.Entry;
        v.Regs.Rsi = layout.VStartInfoStart;
        v.Regs.Rsp = layout.VStackEnd;
        v.Regs.Cs = Xen.FLAT_KERNEL_CS64;
        v.Regs.Ss = Xen.FLAT_KERNEL_SS64;
        v.Regs.Rflags = EntryRflags;
        v.GuestTable = l4Mfn << Layout.PageShift;
        v.GuestTableUser = 0;
        v.KernelMode = true;
        v.VcpuInfoAddress = (d.SharedInfoMfn << Layout.PageShift) + (ulong)SharedInfo.vcpu_info;
        v.Online = true;
        v.Initialised = true;
    }

    /// <summary>Returns every frame the domain took to the machine, clearing its frame-table record.</summary>
    private static void Release(Machine m, Domain d, ulong sharedInfoMfn)
    {
        for (ulong pfn = 0; pfn < d.NrPages; pfn++)
        {
            if (d.P2m[pfn] == Domain.Invalid) continue;
            ReleaseFrame(m, d.P2m[pfn]);
            d.P2m[pfn] = Domain.Invalid;
        }
        if (sharedInfoMfn != Domain.Invalid) ReleaseFrame(m, sharedInfoMfn);
        d.SharedInfoMfn = 0;
    }

    private static void ReleaseFrame(Machine m, ulong mfn) => DomainRelinquish.FreeFrame(m, mfn);

    private static void GiveBack(Machine m, ulong address)
    {
        FrameAllocator allocator = m.Frames as FrameAllocator;
        if (allocator != null) allocator.Free(address);
    }
}
