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
    }

    private const ulong VectorGP = 13, VgcfInSyscall = 1UL << 8;

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

    /// <summary>iret to (cs, ss, rip; 0: the landing) must come back as #GP at <paramref name="expectRip"/> with
    /// <paramref name="expectError"/>, the refused frame's CS in the bounce frame with RPL 0.</summary>
    private static bool Refused(string what, ulong cs, ulong ss, ulong rip, ulong ifFlag, ulong expectRip, ulong expectError, ulong expectCs)
    {
        Traps.ExpectAt(VectorGP, Cpu.Symbol(Cpu.SymIretLanding));
        Cpu.IretTo(cs, ss, rip, ifFlag, 0);
        Traps.ExpectNone();
        bool ok = Traps.Seen ? Checks.ExpectHex("#GP rip", Traps.SeenRip, expectRip)
                && Checks.ExpectHex("#GP error code", Traps.SeenError, expectError)
                && Checks.ExpectHex("#GP frame's CS", Traps.SeenCs & 0xFFFF, expectCs)
            : Checks.Fail("no #GP");
        if (!ok) { Checks.Append(" for "); Checks.Append(what); }
        return ok;
    }
}
