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
