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
        Checks.Run("debugreg_checks", &DebugregChecks);
        Checks.Run("debugreg_dr0_execute_breakpoint", &Dr0ExecuteBreakpoint);
        Checks.Run("debugreg_movss_syscall_data_breakpoint", &MovSsSyscallBreakpoint);
        Checks.Run("debugreg_single_step", &SingleStep);
    }

    private const ulong set_debugreg = 8, get_debugreg = 9;
    private static long SetDr(ulong reg, ulong value) => Hypercall.Call2(set_debugreg, reg, value);
    private static long GetDr(ulong reg) => Hypercall.Call1(get_debugreg, reg);

    /// <summary>set_debugreg's refusals (Xen's set_debugreg): breakpoints in the hypervisor's hole, DR6 and DR7
    /// above 32 bits, DR7's general detect, an I/O breakpoint without CR4.DE, a register that does not exist;
    /// and the reset values and reserved bits get_debugreg reads back.</summary>
    private static void DebugregChecks()
    {
        Checks.ExpectHex("dr6 at boot", (ulong)GetDr(6), 0xFFFF0FF0);
        Checks.ExpectHex("dr7 at boot", (ulong)GetDr(7), 0x400);
        Checks.Expect("dr0 in the hypervisor's hole", SetDr(0, 0xFFFF800000000000), -Xen.EPERM);
        Checks.Expect("dr3 non-canonical", SetDr(3, 0x0000800000000000), -Xen.EPERM);
        Checks.Expect("dr1 above the hole", SetDr(1, 0xFFFF880000000000), 0);
        Checks.ExpectHex("dr1 read back", (ulong)GetDr(1), 0xFFFF880000000000);
        Checks.Expect("dr1 back to 0", SetDr(1, 0), 0);
        Checks.Expect("dr6 above 32 bits", SetDr(6, 1UL << 32), -Xen.EINVAL);
        Checks.Expect("dr7 above 32 bits", SetDr(7, 1UL << 32), -Xen.EINVAL);
        Checks.Expect("dr7 general detect", SetDr(7, 1UL << 13), -Xen.EPERM);
        Checks.Expect("dr7 I/O breakpoint without CR4.DE", SetDr(7, 1 | 2UL << 16), -Xen.EPERM);
        Checks.Expect("dr6 = 0", SetDr(6, 0), 0);
        Checks.ExpectHex("dr6 reserved bits", (ulong)GetDr(6), 0xFFFF0FF0);
        Checks.Expect("dr8", SetDr(8, 0), -Xen.ENODEV);
        Checks.Expect("get dr8", GetDr(8), -Xen.ENODEV);
    }

    /// <summary>An instruction breakpoint in DR0 on our ud2: the #DB comes to our handler before the ud2 runs,
    /// with B0 in DR6 as get_debugreg reads it; with DR7 off again the ud2 runs as usual.</summary>
    private static void Dr0ExecuteBreakpoint()
    {
        ulong at = Cpu.Symbol(Cpu.SymUd2);
        if (!Checks.Expect("dr0 = our ud2", SetDr(0, at), 0)) return;
        if (!Checks.Expect("dr7 = L0, execute", SetDr(7, 1), 0)) return;
        Checks.ExpectHex("dr7 read back", (ulong)GetDr(7), 0x401);
        Traps.Expect(1, 2);                                        // resume after the ud2
        Cpu.Ud2();
        bool seen = Traps.Seen;
        ulong rip = Traps.SeenRip;
        ulong dr6 = (ulong)GetDr(6);
        SetDr(7, 0);
        SetDr(6, 0);
        if (!seen) { Checks.Fail("no #DB from the DR0 breakpoint"); return; }
        Checks.ExpectHex("rip of the #DB", rip, at);
        Checks.ExpectHex("dr6 B0-B3 and BS", dr6 & 0x400F, 1);
        Checks.ExpectHex("dr6 after set_debugreg(6, 0)", (ulong)GetDr(6), 0xFFFF0FF0);
        Traps.Expect(6, 2);
        Cpu.Ud2();
        if (!Traps.Seen) Checks.Fail("no #UD with DR7 off");
    }

    /// <summary>EFLAGS.TF set by popf: #DB after the next instruction, with BS in the DR6 get_debugreg reads.</summary>
    private static void SingleStep()
    {
        SetDr(6, 0);
        Traps.Expect(1, 0);
        ulong expected = Cpu.SingleStep();
        bool seen = Traps.Seen;
        ulong dr6 = (ulong)GetDr(6);
        SetDr(6, 0);
        if (!seen) { Checks.Fail("no #DB after a single step"); return; }
        Checks.ExpectHex("rip of the #DB", Traps.SeenRip, expected);
        Checks.ExpectHex("dr6 BS, no B0-B3", dr6 & 0x400F, 0x4000);
    }

    /// <summary>Xen's XSA-260: a data breakpoint on the operand of a MOV SS whose shadow covers a SYSCALL raises
    /// its #DB after the SYSCALL, at CPL 0, on the guest's stack and GS. The hypervisor must survive it; the
    /// #DB is the hypervisor's own context's and is dropped, as Xen drops it. (QEMU's TCG ignores the shadow and
    /// delivers the #DB to us at the SYSCALL instead, on Xen as on Microhv: that is accepted too.) So is a
    /// breakpoint on a buffer the hypervisor writes for us (xen_version's extraversion): dropped.</summary>
    private static void MovSsSyscallBreakpoint()
    {
        ushort* ss = stackalloc ushort[4];
        ss[0] = 0xE02B;                                             // FLAT_KERNEL_SS, the one we run on
        if (!Checks.Expect("dr0 = the selector", SetDr(0, (ulong)ss), 0)) return;
        if (!Checks.Expect("dr7 = L0, read/write, 2 bytes", SetDr(7, 1 | 3UL << 16 | 1UL << 18), 0)) return;
        Traps.Expect(1, 0);                                         // only under TCG: resume at the SYSCALL
        long version = Cpu.MovSsHypercall(ss, Xen.xen_version, 0, 0);
        bool before = Traps.Seen;
        Traps.ExpectNone();
        byte* extra = stackalloc byte[16];
        SetDr(0, (ulong)extra);
        long rc = Hypercall.XenVersion(1, extra);                   // XENVER_extraversion: the hypervisor writes it
        SetDr(7, 0);
        SetDr(6, 0);
        if (before) Checks.Differs("the CPU delivered the #DB at the SYSCALL, before it, not after it at CPL 0, as QEMU TCG does");
        Checks.Expect("xen_version after MOV SS", version >> 16, 4);
        Checks.Expect("xen_version(extraversion) into a watched buffer", rc, 0);
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
