namespace Microhv.Guests.PvTest;

/// <summary>start_info, version, hypercall entry, console, memory_op, multicall, grant table, sched, time, emulation.</summary>
internal static unsafe class BasicChecks
{
    public static void Run()
    {
        Checks.Run("start_info", &StartInfo);
        Checks.Run("p2m_m2p_consistent", &P2mM2p);
        Checks.Run("xen_version", &XenVersion);
        Checks.Run("int82_trap_entry", &Int82Entry);
        Checks.Run("invalid_hypercall_enosys", &InvalidHypercall);
        Checks.Run("console_io_bad_pointer_efault", &ConsoleBadPointer);
        Checks.Run("console_io_hypervisor_pointer_efault", &ConsoleHypervisorPointer);
        Checks.Run("console_io_huge_count", &ConsoleHugeCount);
        Checks.Run("memory_map", &MemoryMap);
        Checks.Run("machphys_mapping", &MachphysMapping);
        Checks.Run("multicall_xen_version", &Multicall);
        Checks.Run("multicall_bad_pointer_efault", &MulticallBadPointer);
        Checks.Run("multicall_iret_ends_the_batch", &MulticallIret);
        Checks.Run("grant_table_query_size", &GrantQuerySize);
        Checks.Run("sched_yield", &SchedYield);
        Checks.Run("vcpu_time_info", &TimeInfo);
        Checks.Run("cpuid_forced_emulation", &CpuidSignature);
        Checks.Run("msr_fs_base", &MsrFsBase);
        Checks.Run("set_segment_base_fs", &SegmentBaseFs);
    }

    private static bool MagicIs(byte* s, string prefix)
    {
        for (int i = 0; i < prefix.Length; i++) if (s[i] != (byte)prefix[i]) return false;
        return true;
    }

    private static void StartInfo()
    {
        byte* si = Guest.StartInfo;
        // "xen-3.0-x86_64", optionally followed by 'p' (PAE) and NUL.
        if (!MagicIs(si, "xen-3.0-x86_64")) { Checks.Fail("magic is not xen-3.0-x86_64"); return; }
        ulong nr = Guest.NrPages;
        if (nr == 0 || nr > (1UL << 40)) Checks.Fail("nr_pages = ", (long)nr);
        ulong v = Guest.Layout->VirtBase;
        ulong ptBase = *(ulong*)(si + Xen.SI_pt_base);
        ulong nrPt = *(ulong*)(si + Xen.SI_nr_pt_frames);
        ulong mfnList = *(ulong*)(si + Xen.SI_mfn_list);
        if (ptBase < Guest.Layout->ImageEnd || (ptBase & 4095) != 0) Checks.FailHex("pt_base not a page after the image: ", ptBase);
        if (nrPt < 4 || nrPt > 64) Checks.Fail("nr_pt_frames = ", (long)nrPt);
        if (mfnList < Guest.Layout->ImageEnd || mfnList >= v + (nr << 12)) Checks.FailHex("mfn_list outside our memory: ", mfnList);
        if ((ulong)si < Guest.Layout->ImageEnd || ((ulong)si & 4095) != 0) Checks.FailHex("start_info not page-aligned after the image: ", (ulong)si);
        ulong shared = *(ulong*)(si + Xen.SI_shared_info);
        if (shared == 0 || (shared & 4095) != 0) Checks.FailHex("shared_info = ", shared);
        // The L4 is mapped read-only at pt_base and its own entry for VIRT_BASE is present.
        ulong l4e = ((ulong*)ptBase)[511];
        if ((l4e & Xen._PAGE_PRESENT) == 0) Checks.FailHex("L4[511] not present: ", l4e);
    }

    private static void P2mM2p()
    {
        ulong nr = Guest.NrPages;
        ulong step = nr / 64 + 1;
        for (ulong pfn = 0; pfn < nr; pfn += step)
        {
            ulong mfn = Guest.P2m[pfn];
            ulong back = Guest.M2p[mfn];
            if (back != pfn)
            {
                Checks.Fail("m2p[p2m[pfn]] != pfn for pfn ", (long)pfn);
                Checks.Append(": mfn ");
                Checks.AppendHex(mfn);
                Checks.Append(" -> ");
                Checks.AppendHex(back);
                return;
            }
        }
        // The L4 the hypervisor loaded is the frame behind pt_base.
        ulong ptBase = *(ulong*)(Guest.StartInfo + Xen.SI_pt_base);
        ulong mfnL4 = Guest.MfnOf((void*)ptBase);
        Checks.Expect("m2p[mfn of pt_base]", (long)Guest.M2p[mfnL4], (long)Guest.PfnOf((void*)ptBase));
    }

    private static byte* Scratch => Guest.Page(5);

    private static void XenVersion()
    {
        long v = Hypercall.XenVersion(Xen.XENVER_version, null);
        if (v < 0) { Checks.Fail("XENVER_version = ", v); return; }
        if ((v >> 16) < 3) Checks.Fail("major version ", v >> 16);
        byte* caps = Scratch;
        for (int i = 0; i < 1024; i++) caps[i] = 0;
        long rc = Hypercall.XenVersion(Xen.XENVER_capabilities, caps);
        if (!Checks.Expect("XENVER_capabilities", rc, 0)) return;
        if (!Contains(caps, 1024, "xen-3.0-x86_64")) Checks.Fail("capabilities lack xen-3.0-x86_64");

        // Output the guest may not write itself is -EFAULT, as on Xen: its own L4 (every page-table
        // page is mapped read-only), an unmapped page, a non-canonical address, the hypervisor's area.
        ulong l4 = *(ulong*)(Guest.StartInfo + Xen.SI_pt_base);
        Checks.Expect("XENVER_extraversion into the read-only L4", Hypercall.XenVersion(Xen.XENVER_extraversion, (void*)l4), -Xen.EFAULT);
        Checks.Expect("XENVER_extraversion into 0x1000", Hypercall.XenVersion(Xen.XENVER_extraversion, (void*)0x1000), -Xen.EFAULT);
        Checks.Expect("XENVER_extraversion into a non-canonical address", Hypercall.XenVersion(Xen.XENVER_extraversion, (void*)0x0000800000000000), -Xen.EFAULT);
        Checks.Expect("XENVER_extraversion into the hypervisor's area", Hypercall.XenVersion(Xen.XENVER_extraversion, (void*)0xFFFF830000000000), -Xen.EFAULT);
    }

    /// <summary>Microhv also takes hypercalls through INT 0x82 (a trap gate open to ring 3); Xen keeps
    /// that entry for 32-bit guests only, so on Xen the check says so and passes.</summary>
    private static void Int82Entry()
    {
        byte* extra = Scratch;
        for (int i = 0; i < 32; i++) extra[i] = 0;
        if (Hypercall.XenVersion(Xen.XENVER_extraversion, extra) != 0 || !Contains(extra, 16, "microhv"))
        {
            Checks.Differs("Xen has no INT 0x82 hypercall entry for 64-bit PV guests");
            return;
        }
        long viaPage = Hypercall.XenVersion(Xen.XENVER_version, null);
        Checks.Expect("xen_version through INT 0x82", Cpu.Int82Hypercall(Xen.xen_version, Xen.XENVER_version), viaPage);
    }

    private static bool Contains(byte* s, int max, string needle)
    {
        for (int i = 0; i + needle.Length <= max && s[i] != 0; i++)
        {
            int j = 0;
            while (j < needle.Length && s[i + j] == (byte)needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }

    private static void InvalidHypercall()
    {
        Checks.Expect("raw syscall rax=60", Hypercall.Raw(60, 0, 0, 0, 0, 0), -Xen.ENOSYS);
        Checks.Expect("hypercall page slot 60", Hypercall.Call0(60), -Xen.ENOSYS);
        Checks.Expect("raw syscall rax=1000", Hypercall.Raw(1000, 0, 0, 0, 0, 0), -Xen.ENOSYS);
    }

    private static void ConsoleBadPointer()
        => Checks.Expect("console_io(write, 4, 0x1000)", Hypercall.ConsoleWrite((byte*)0x1000, 4), -Xen.EFAULT);

    private static void ConsoleHypervisorPointer()
        => Checks.Expect("console_io(write, 4, hypervisor hole)", Hypercall.ConsoleWrite((byte*)0xFFFF830000000000, 4), -Xen.EFAULT);

    private static void ConsoleHugeCount()
    {
        long rc = Hypercall.ConsoleWrite((byte*)0x1000, 0x7FFFFFFF);
        Checks.ExpectRejected("console_io(write, 0x7fffffff, 0x1000)", rc);
        rc = Hypercall.ConsoleWrite((byte*)0xFFFFFFFFFFFFF000, 0xFFFFFFFF);
        Checks.ExpectRejected("console_io(write, 0xffffffff, top of memory)", rc);
    }

    private static void MemoryMap()
    {
        // struct xen_memory_map { unsigned int nr_entries; XEN_GUEST_HANDLE(void) buffer; }
        ulong* map = (ulong*)Guest.Page(6);
        byte* entries = Guest.Page(5);
        map[0] = 128;
        map[1] = (ulong)entries;
        long rc = Hypercall.MemoryOp(Xen.XENMEM_memory_map, map);
        if (rc == -Xen.ENOSYS && Guest.IsInitialDomain)
        {
            // Xen keeps no pseudo-physical map for a PV initial domain (Linux then assumes nr_pages of RAM).
            Checks.Differs("-ENOSYS for the initial domain, as Xen");
            return;
        }
        if (!Checks.Expect("XENMEM_memory_map", rc, 0)) return;
        uint n = (uint)map[0];
        if (n == 0 || n > 128) { Checks.Fail("nr_entries = ", n); return; }
        // The initial domain may see the machine's map, others a pseudo-physical one: either way
        // the RAM it lists must hold all our pages.
        ulong ram = 0;
        for (uint i = 0; i < n; i++)
        {
            // struct e820entry { u64 addr; u64 size; u32 type; } packed, 20 bytes
            byte* e = entries + i * 20;
            if (*(uint*)(e + 16) == Xen.E820_RAM) ram += *(ulong*)(e + 8);
        }
        if (ram < (Guest.NrPages << 12)) Checks.FailHex("RAM listed: ", ram);
    }

    private static void MachphysMapping()
    {
        // struct xen_machphys_mapping { xen_ulong_t v_start, v_end, max_mfn; }
        ulong* m = (ulong*)Guest.Page(6);
        m[0] = m[1] = m[2] = 0;
        if (!Checks.Expect("XENMEM_machphys_mapping", Hypercall.MemoryOp(Xen.XENMEM_machphys_mapping, m), 0)) return;
        Checks.ExpectHex("v_start", m[0], Xen.MACH2PHYS_VIRT_START);
        if (m[1] <= m[0] || m[1] > Xen.HYPERVISOR_VIRT_END) Checks.FailHex("v_end = ", m[1]);
        if ((m[1] - m[0]) / 8 < m[2]) Checks.FailHex("max_mfn beyond the table: ", m[2]);
        for (ulong pfn = 0; pfn < Guest.NrPages; pfn++)
            if (Guest.P2m[pfn] > m[2]) { Checks.FailHex("our mfn above max_mfn: ", Guest.P2m[pfn]); return; }
    }

    private static void Multicall()
    {
        // struct multicall_entry { xen_ulong_t op, result; xen_ulong_t args[6]; }
        ulong* calls = (ulong*)Guest.Page(6);
        for (int i = 0; i < 3 * 8; i++) calls[i] = 0;
        for (int i = 0; i < 3; i++)
        {
            calls[i * 8] = Xen.xen_version;
            calls[i * 8 + 1] = 0xDEAD;
            calls[i * 8 + 2] = Xen.XENVER_version;
        }
        long expected = Hypercall.XenVersion(Xen.XENVER_version, null);
        long rc = Hypercall.Call2(Xen.multicall, (ulong)calls, 3);
        if (!Checks.Expect("multicall", rc, 0)) return;
        for (int i = 0; i < 3; i++) Checks.Expect("result", (long)calls[i * 8 + 1], expected);
    }

    /// <summary>An iret entry is performed (Xen's mc_exit): the batch ends there, the frame on the stack
    /// the multicall was made on is returned through, its RAX is the entry's result and the call's.</summary>
    private static void MulticallIret()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        ulong* calls = (ulong*)Guest.Page(6);
        for (int i = 0; i < 3 * 8; i++) calls[i] = 0;
        for (int i = 0; i < 3; i++) { calls[i * 8] = Xen.xen_version; calls[i * 8 + 1] = 0xDEAD; }
        calls[8] = Xen.iret;
        ulong ifFlag = Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_mask) == 0 ? 0x200UL : 0;
        ulong* seen = stackalloc ulong[2];
        long rc = Cpu.MulticallIret((ulong)calls, 3, ifFlag, seen);
        Checks.ExpectHex("multicall's rax: the frame's", (ulong)rc, 0x1BE7);
        Checks.ExpectHex("rcx from the frame", seen[0], 0xC5E7);
        Checks.ExpectHex("r11 from the frame", seen[1], 0x11E7);
        Checks.Expect("entry 0 made", (long)calls[1], Hypercall.XenVersion(Xen.XENVER_version, null));
        Checks.ExpectHex("iret entry's result", calls[8 + 1], 0x1BE7);
        Checks.ExpectHex("entry 2 not made", calls[16 + 1], 0xDEAD);
    }

    private static void MulticallBadPointer()
    {
        Checks.Expect("multicall(0x1000, 2)", Hypercall.Call2(Xen.multicall, 0x1000, 2), -Xen.EFAULT);
    }

    private static void GrantQuerySize()
    {
        // struct gnttab_query_size { domid_t dom; uint32_t nr_frames, max_nr_frames; int16_t status; }
        byte* q = Guest.Page(6);
        for (int i = 0; i < 16; i++) q[i] = 0xFF;
        *(ushort*)q = Xen.DOMID_SELF;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_query_size, (ulong)q, 1);
        if (!Checks.Expect("GNTTABOP_query_size", rc, 0)) return;
        Checks.Expect("status", *(short*)(q + 12), 0);
        uint nr = *(uint*)(q + 4), max = *(uint*)(q + 8);
        if (max == 0 || max > 0x10000 || nr > max) { Checks.Fail("nr_frames ", nr); Checks.Append(" max "); Checks.AppendSigned(max); }
    }

    private static void SchedYield() => Checks.Expect("SCHEDOP_yield", Hypercall.SchedOp(Xen.SCHEDOP_yield, null), 0);

    private static void TimeInfo()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        ulong t1 = Guest.SystemTime(out uint v1);
        if ((v1 & 1) != 0) Checks.Fail("version odd: ", v1);
        if (t1 == 0) Checks.Fail("system_time is 0");
        ulong t2 = t1;
        for (int i = 0; i < 1000 && t2 <= t1; i++)
        {
            Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
            t2 = Guest.SystemTime(out _);
        }
        if (t2 <= t1) Checks.Fail("system_time does not advance: ", (long)t1);
    }

    private static void CpuidSignature()
    {
        uint* r = stackalloc uint[4];
        Traps.ExpectNone();
        Cpu.XenCpuid(0x40000000, 0, r);
        // "XenVMMXenVMM" in ebx, ecx, edx
        if (r[1] != 0x566E6558 || r[2] != 0x65584D4D || r[3] != 0x4D4D566E)
        {
            Checks.FailHex("leaf 0x40000000 ebx ", r[1]);
            Checks.Append(" ecx "); Checks.AppendHex(r[2]); Checks.Append(" edx "); Checks.AppendHex(r[3]);
        }
        if (r[0] < 0x40000002) Checks.FailHex("max hypervisor leaf ", r[0]);
    }

    private static void MsrFsBase()
    {
        const ulong value = 0x00007F0012345000;
        Cpu.Wrmsr(Xen.MSR_FS_BASE, value);
        ulong got = Cpu.Rdmsr(Xen.MSR_FS_BASE);
        Cpu.Wrmsr(Xen.MSR_FS_BASE, 0);
        Checks.ExpectHex("rdmsr(FS_BASE) after wrmsr", got, value);
        Checks.ExpectHex("rdmsr(FS_BASE) after wrmsr 0", Cpu.Rdmsr(Xen.MSR_FS_BASE), 0);
    }

    private static void SegmentBaseFs()
    {
        const ulong value = 0x00007F00ABCDE000;
        long rc = Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_FS, value);
        if (!Checks.Expect("set_segment_base(FS)", rc, 0)) return;
        ulong got = Cpu.Rdmsr(Xen.MSR_FS_BASE);
        Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_FS, 0);
        Checks.ExpectHex("rdmsr(FS_BASE)", got, value);
    }
}
