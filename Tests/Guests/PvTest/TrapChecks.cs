namespace Microhv.Guests.PvTest;

/// <summary>Exceptions bounced to our trap table and returned from with the iret hypercall.</summary>
internal static unsafe class TrapChecks
{
    public static void Run()
    {
        Checks.Run("trap_ud2_bounced", &Ud2);
        Checks.Run("trap_int3_bounced", &Int3);
        Checks.Run("trap_page_fault_cr2", &PageFault);
        Checks.Run("trap_write_read_only_page_fault", &WriteReadOnly);
        Checks.Run("cr4_fsgsbase_as_the_policy_offers", &Fsgsbase);
    }

    private const ulong Cr4Fsgsbase = 1UL << 16;
    private const uint MsrFsBase = 0xC0000100;

    /// <summary>CR4.FSGSBASE as Xen offers it to a 64-bit PV kernel: settable when CPUID shows FSGSBASE
    /// (dropped otherwise), RDFSBASE #UD until it is set, and the FS base the guest writes itself is the
    /// one the emulated MSR, set_segment_base and a reschedule see.</summary>
    private static void Fsgsbase()
    {
        uint* r = stackalloc uint[4];
        Cpu.XenCpuid(0, 0, r);
        bool offered = false;
        if (r[0] >= 7) { Cpu.XenCpuid(7, 0, r); offered = (r[1] & 1) != 0; }
        ulong cr4 = Cpu.ReadCr4();
        if (!Checks.ExpectHex("CR4.FSGSBASE at boot", cr4 & Cr4Fsgsbase, 0)) return;
        Traps.Expect(6, 5);
        Cpu.RdFsBase();
        if (!Traps.Seen) { Checks.Fail("rdfsbase without CR4.FSGSBASE: no #UD"); return; }
        Cpu.WriteCr4(cr4 | Cr4Fsgsbase);
        if (!offered)
        {
            Checks.Differs("this CPU has no FSGSBASE: only its refusal is checked");
            Checks.ExpectHex("CR4 after setting FSGSBASE the policy does not offer", Cpu.ReadCr4(), cr4);
            return;
        }
        if (!Checks.ExpectHex("CR4 after setting FSGSBASE", Cpu.ReadCr4(), cr4 | Cr4Fsgsbase)) return;
        ulong original = Cpu.Rdmsr(MsrFsBase);
        Checks.ExpectHex("rdfsbase", Cpu.RdFsBase(), original);
        Cpu.WrFsBase(0x12345000);
        Checks.ExpectHex("rdfsbase after wrfsbase", Cpu.RdFsBase(), 0x12345000);
        Checks.ExpectHex("rdmsr FS_BASE after wrfsbase", Cpu.Rdmsr(MsrFsBase), 0x12345000);
        Hypercall.Call2(Xen.sched_op, Xen.SCHEDOP_yield, 0);
        Checks.ExpectHex("rdfsbase after a yield", Cpu.RdFsBase(), 0x12345000);
        Checks.Expect("set_segment_base(FS)", Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_FS, 0x23456000), 0);
        Checks.ExpectHex("rdfsbase after set_segment_base", Cpu.RdFsBase(), 0x23456000);
        Cpu.WrFsBase(original);
        Cpu.WriteCr4(cr4);
        Checks.ExpectHex("CR4 after clearing FSGSBASE", Cpu.ReadCr4(), cr4);
        Checks.ExpectHex("FS base kept", Cpu.Rdmsr(MsrFsBase), original);
        Traps.Expect(6, 5);
        Cpu.RdFsBase();
        if (!Traps.Seen) Checks.Fail("rdfsbase after clearing CR4.FSGSBASE: no #UD");
    }

    private static void Ud2()
    {
        ulong at = Cpu.Symbol(Cpu.SymUd2);
        Traps.Expect(6, 2);
        Cpu.Ud2();
        if (!Traps.Seen) { Checks.Fail("no #UD"); return; }
        Checks.ExpectHex("rip", Traps.SeenRip, at);
        // The frame shows the guest kernel's code selector with RPL 0, so a kernel tells its own
        // frames from user frames by RPL (Linux's user_mode()); bits 32-39 carry the saved upcall mask.
        Checks.ExpectHex("cs", Traps.SeenCs & 0xFFFF, Xen.FLAT_KERNEL_CS & ~3UL);
    }

    private static void Int3()
    {
        ulong at = Cpu.Symbol(Cpu.SymInt3);
        Traps.Expect(3, 0);
        Cpu.Int3();
        if (!Traps.Seen) { Checks.Fail("no #BP"); return; }
        Checks.ExpectHex("rip (after int3)", Traps.SeenRip, at + 1);
    }

    private static void PageFault()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        const ulong unmapped = 0x0000000012345678;
        Traps.Expect(14, 3);
        Cpu.Read64(unmapped);
        if (!Traps.Seen) { Checks.Fail("no #PF"); return; }
        Checks.ExpectHex("rip", Traps.SeenRip, Cpu.Symbol(Cpu.SymRead64));
        Checks.ExpectHex("vcpu_info.arch.cr2", Traps.SeenCr2, unmapped);
        Checks.ExpectHex("error code P|W", Traps.SeenError & 3, 0);
    }

    private static void WriteReadOnly()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        byte* page = Guest.Page(7);
        if (!Checks.Expect("make a data page read-only", Guest.MakeReadOnly(page), 0)) return;
        Traps.Expect(14, 3);
        Cpu.Write64((ulong)page, 1);
        if (!Traps.Seen) Checks.Fail("no #PF writing a read-only page");
        else
        {
            Checks.ExpectHex("cr2", Traps.SeenCr2, (ulong)page);
            Checks.ExpectHex("error code P|W", Traps.SeenError & 3, 3);
        }
        Checks.Expect("make it writable again", Guest.MakeWritable(page), 0);
        Checks.ExpectHex("page untouched", *(ulong*)page, 0);
    }
}
