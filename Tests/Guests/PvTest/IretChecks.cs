namespace Microhv.Guests.PvTest;

/// <summary>
/// HYPERVISOR_iret to a frame the CPU refuses. The hypervisor does not check the selectors or the RIP a
/// guest irets to; its own IRETQ faults on them instead, and Xen 4.17 reports that fault to the guest as
/// the very exception at the iret's target (entry.S's .Lft0 fixup, since "x86: drop failsafe callback
/// invocation from assembly"): #GP with the selector as error code, the bad selector in the frame's CS.
/// A hypervisor that does not catch its own IRETQ's fault dies with every domain.
/// </summary>
internal static unsafe class IretChecks
{
    public static void Run()
    {
        Checks.Run("iret_refused_selector_or_rip_is_the_guests_fault", &RefusedIret);
        Checks.Run("iret_to_a_descriptor_made_not_present", &NotPresent);
        Checks.Run("ldt_selector_without_an_ldt_is_refused", &NoLdt);
    }

    private static byte* s_gdtPage;
    private const ulong VectorNP = 11, VectorGP = 13, VgcfInSyscall = 1UL << 8, update_descriptor = 10;

    private static void RefusedIret()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        ulong ifFlag = Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_mask) == 0 ? 0x200UL : 0;
        ulong landing = Cpu.Symbol(Cpu.SymIretLanding);
        // Selectors with RPL 0 (a return to the guest kernel): the hypervisor makes them RPL 3.
        if (!Refused("a CS past the GDT's guest entries (no set_gdt frame there)", 0x1000, Xen.FLAT_KERNEL_SS, 0, ifFlag, landing, 0x1000, 0x1000)) return;
        if (!Refused("an LDT CS with no LDT", 0x0004, Xen.FLAT_KERNEL_SS, 0, ifFlag, landing, 0x0004, 0x0004)) return;
        if (!Refused("an SS past the GDT's guest entries", Xen.FLAT_KERNEL_CS & ~3UL, 0x1000, 0, ifFlag, landing, 0x1000, Xen.FLAT_KERNEL_CS & ~3UL)) return;
        // A non-canonical RIP: #GP(0) from the IRETQ itself on Intel, from the fetch there under QEMU's TCG.
        const ulong nonCanonical = 0x0000800000000000;
        if (!Refused("a non-canonical RIP", Xen.FLAT_KERNEL_CS & ~3UL, Xen.FLAT_KERNEL_SS, nonCanonical, ifFlag, nonCanonical, 0, Xen.FLAT_KERNEL_CS & ~3UL)) return;
        // VGCF_in_syscall: Xen leaves by SYSRET, which loads the flat selectors whatever the context names.
        Traps.ExpectNone();
        Checks.Expect("iret with VGCF_in_syscall and a CS past the GDT", Cpu.IretTo(0x1000, 0x1000, 0, ifFlag, VgcfInSyscall), 0);
        // And a good one still returns where it says.
        Checks.Expect("iret to our own CS and SS", Cpu.IretTo(Xen.FLAT_KERNEL_CS & ~3UL, Xen.FLAT_KERNEL_SS, 0, ifFlag, 0), 0);
        Checks.ExpectHex("upcall mask kept", Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_mask), ifFlag != 0 ? 0UL : 1UL);
    }

    /// <summary>A GDT of our own (set_gdt) with a 64-bit code segment: an iret to it runs there; after
    /// update_descriptor made it not present, the iret to it is refused with #NP and the selector.</summary>
    private static void NotPresent()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        ulong ifFlag = Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_mask) == 0 ? 0x200UL : 0;
        // A page of its own (the image's spare pages are all some check's): from the heap, never given back.
        if (s_gdtPage == null) s_gdtPage = (byte*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
        byte* page = s_gdtPage;
        ulong* gdt = (ulong*)page;
        gdt[1] = 0x00AF_FA00_0000_FFFFUL;                           // 64-bit code, DPL 3, present
        gdt[2] = 0x00CF_F200_0000_FFFFUL;                           // writable data, DPL 3, present
        if (!Checks.Expect("make the GDT page read-only", Guest.MakeReadOnly(page), 0)) return;
        ulong* frames = stackalloc ulong[1];
        frames[0] = Guest.MfnOf(page);
        if (Checks.Expect("set_gdt with 3 entries", Hypercall.Call2(Xen.set_gdt, (ulong)frames, 3), 0))
        {
            Traps.ExpectNone();
            if (Checks.Expect("iret to our GDT's code and data segments", Cpu.IretTo(0x0008, 0x0010, 0, ifFlag, 0), 0)
                && Checks.Expect("update_descriptor: the code segment not present",
                    Hypercall.Call2(update_descriptor, (frames[0] << 12) + 8, 0x00AF_7A00_0000_FFFFUL), 0))
                Refused("a CS whose descriptor is not present", VectorNP, 0x0008, Xen.FLAT_KERNEL_SS, 0, ifFlag, Cpu.Symbol(Cpu.SymIretLanding), 0x0008, 0x0008);
            Checks.Expect("set_gdt with no entries", Hypercall.Call2(Xen.set_gdt, (ulong)frames, 0), 0);
        }
        Checks.Expect("make the GDT page writable again", Guest.MakeWritable(page), 0);
        gdt[1] = 0;
        gdt[2] = 0;
    }

    /// <summary>No LDT is loaded (we never set one): a far call through an LDT selector is #GP with it.
    /// With the LDTR a firmware leaves (base 0, limit 0xFFFF) the CPU would read the descriptor from
    /// our own address 0 instead: a #PF here, and whatever call gate we put there on a hypervisor that lets it.</summary>
    private static void NoLdt()
    {
        Traps.Expect(VectorGP, 6);
        Cpu.FarCallLdt();
        if (!Traps.Seen) { Checks.Fail("no #GP"); return; }
        Checks.ExpectHex("#GP error code", Traps.SeenError, 0x0004);
    }

    /// <summary>iret to (cs, ss, rip; 0: the landing) must come back as #GP at <paramref name="expectRip"/> with
    /// <paramref name="expectError"/>, the refused frame's CS in the bounce frame with RPL 0.</summary>
    private static bool Refused(string what, ulong cs, ulong ss, ulong rip, ulong ifFlag, ulong expectRip, ulong expectError, ulong expectCs)
        => Refused(what, VectorGP, cs, ss, rip, ifFlag, expectRip, expectError, expectCs);

    private static bool Refused(string what, ulong vector, ulong cs, ulong ss, ulong rip, ulong ifFlag, ulong expectRip, ulong expectError, ulong expectCs)
    {
        Traps.ExpectAt(vector, Cpu.Symbol(Cpu.SymIretLanding));
        Cpu.IretTo(cs, ss, rip, ifFlag, 0);
        Traps.ExpectNone();
        bool ok = Traps.Seen ? Checks.ExpectHex("trap rip", Traps.SeenRip, expectRip)
                && Checks.ExpectHex("trap error code", Traps.SeenError, expectError)
                && Checks.ExpectHex("trap frame's CS", Traps.SeenCs & 0xFFFF, expectCs)
            : Checks.Fail("no trap");
        if (!ok) { Checks.Append(" for "); Checks.Append(what); }
        return ok;
    }
}
