namespace Microhv.Guests;

/// <summary>
/// The guest's view of its domain: start_info, the phys-to-machine list, the hypervisor's
/// machine-to-phys table, and mapping of machine frames at free virtual addresses. The domain
/// builder maps the bootstrap region at VIRT_BASE + (pfn &lt;&lt; 12), so a bootstrap pfn's
/// address is known without page-table walks.
/// </summary>
public static unsafe class Guest
{
    public static byte* StartInfo;
    public static GuestLayout* Layout;
    public static ulong* P2m;                 // start_info.mfn_list: mfn of every pfn
    public static ulong NrPages;
    public static byte* SharedInfo;           // mapped by MapSharedInfo, else null

    /// <summary>A 1 GiB-aligned-free window of 512 pages, 512 MiB above VIRT_BASE, backed by our own L1.</summary>
    public static ulong WindowVa;
    public static ulong* WindowL1;            // its L1, read-only to us (readable)
    public const int WindowSharedInfo = 0, WindowConsole = 1, WindowTest = 2;

    public static ulong* M2p => (ulong*)Xen.MACH2PHYS_VIRT_START;

    public static void Initialize(byte* startInfo, GuestLayout* layout)
    {
        StartInfo = startInfo;
        Layout = layout;
        P2m = (ulong*)*(ulong*)(startInfo + Xen.SI_mfn_list);
        NrPages = *(ulong*)(startInfo + Xen.SI_nr_pages);
    }

    public static uint Flags => *(uint*)(StartInfo + Xen.SI_flags);
    public static bool IsInitialDomain => (Flags & Xen.SIF_INITDOMAIN) != 0;

    public static ulong PfnOf(void* va) => ((ulong)va - Layout->VirtBase) >> 12;
    public static ulong MfnOf(void* va) => P2m[PfnOf(va)];
    public static byte* VaOfPfn(ulong pfn) => (byte*)(Layout->VirtBase + (pfn << 12));

    /// <summary>One of the boot stub's spare zeroed pages (index from 0).</summary>
    public static byte* Page(int index) => (byte*)(Layout->PagesStart + (ulong)index * 4096);

    public static ulong KernelPte(ulong mfn, bool writable)
        => (mfn << 12) | Xen._PAGE_PRESENT | Xen._PAGE_USER | Xen._PAGE_ACCESSED
           | (writable ? Xen._PAGE_RW | Xen._PAGE_DIRTY : 0);

    /// <summary>Makes one of our own pages read-only (a page table must have no writable mapping).</summary>
    public static long MakeReadOnly(void* va)
        => Hypercall.UpdateVaMapping((ulong)va, KernelPte(MfnOf(va), false), Xen.UVMF_INVLPG);

    public static long MakeWritable(void* va)
        => Hypercall.UpdateVaMapping((ulong)va, KernelPte(MfnOf(va), true), Xen.UVMF_INVLPG);

    /// <summary>The machine address of the page table at <paramref name="level"/> (4..1) on the walk to <paramref name="va"/>; 0 if absent.</summary>
    public static ulong TableMachineAddress(ulong va, int level)
    {
        ulong l4 = *(ulong*)(StartInfo + Xen.SI_pt_base);
        ulong table = l4;                    // virtual address of the current table
        ulong tableMfn = MfnOf((void*)l4);
        for (int l = 4; l > level; l--)
        {
            int index = (int)((va >> (12 + 9 * (l - 1))) & 511);
            ulong e = ((ulong*)table)[index];
            if ((e & Xen._PAGE_PRESENT) == 0 || (e & Xen._PAGE_PSE) != 0) return 0;
            tableMfn = (e & Xen.PTE_MFN_MASK) >> 12;
            ulong pfn = M2p[tableMfn];
            if (pfn >= NrPages) return 0;
            table = (ulong)VaOfPfn(pfn);
        }
        return tableMfn << 12;
    }

    /// <summary>Builds the window: page 0 of our spare pages becomes an L1 hooked into the L2 that maps VIRT_BASE.</summary>
    public static long CreateWindow()
    {
        WindowVa = Layout->VirtBase + 0x20000000;
        byte* l1 = Page(0);
        long rc = MakeReadOnly(l1);
        if (rc != 0) return rc;
        ulong l2 = TableMachineAddress(WindowVa, 2);
        if (l2 == 0) return -1000;
        ulong* req = stackalloc ulong[2];
        req[0] = (l2 + ((WindowVa >> 21) & 511) * 8) | Xen.MMU_NORMAL_PT_UPDATE;
        req[1] = KernelPte(MfnOf(l1), true);
        uint done = 0;
        rc = Hypercall.MmuUpdate(req, 1, &done);
        if (rc != 0) return rc;
        WindowL1 = (ulong*)l1;
        return 0;
    }

    public static ulong WindowPage(int index) => WindowVa + (ulong)index * 4096;

    /// <summary>Maps machine frame <paramref name="mfn"/> at window page <paramref name="index"/>.</summary>
    public static long MapInWindow(int index, ulong mfn, bool writable)
        => Hypercall.UpdateVaMapping(WindowPage(index), KernelPte(mfn, writable), Xen.UVMF_INVLPG);

    public static long UnmapInWindow(int index)
        => Hypercall.UpdateVaMapping(WindowPage(index), 0, Xen.UVMF_INVLPG);

    public static long MapSharedInfo()
    {
        ulong maddr = *(ulong*)(StartInfo + Xen.SI_shared_info);
        long rc = MapInWindow(WindowSharedInfo, maddr >> 12, true);
        if (rc == 0) SharedInfo = (byte*)WindowPage(WindowSharedInfo);
        return rc;
    }

    public static byte* VcpuInfo => SharedInfo;   // vcpu 0

    /// <summary>vcpu_time_info.system_time read under its version protocol (odd = being updated).</summary>
    public static ulong SystemTime(out uint version)
    {
        byte* t = SharedInfo + Xen.VI_time;
        while (true)
        {
            uint v1 = Cpu.Load32(t + Xen.TI_version);
            ulong tsc = Cpu.Load64(t + Xen.TI_tsc_timestamp);
            ulong sys = Cpu.Load64(t + Xen.TI_system_time);
            uint mul = Cpu.Load32(t + Xen.TI_mul);
            sbyte shift = (sbyte)Cpu.Load8(t + Xen.TI_shift);
            uint v2 = Cpu.Load32(t + Xen.TI_version);
            if (v1 != v2 || (v1 & 1) != 0) continue;
            version = v1;
            ulong delta = Cpu.Rdtsc() - tsc;
            if (shift >= 0) delta <<= shift; else delta >>= -shift;
            // (delta * mul) >> 32 without a 128-bit type
            ulong lo = (delta & 0xFFFFFFFF) * mul;
            ulong hi = (delta >> 32) * mul;
            return sys + (hi + (lo >> 32));
        }
    }
}
