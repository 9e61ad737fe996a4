namespace Microhv.Guests.PvTest;

/// <summary>
/// <c>workload=segments [variant=2] [rounds=N] [remap] [failsafe]</c>: DS, ES, FS and GS loaded from an LDT of our
/// own, then N yields; with other domains on the same processor each yield is a switch away and back, and
/// each round checks the selectors are still ours and FS still reads through its descriptor's base (Xen's
/// save_segments / load_segments). <c>variant=2</c> loads them in another order, so two such domains hold
/// different selectors; <c>remap</c> changes the LDT's size before each yield, which drops its mapped page, so
/// the reload at the switch back maps it again on demand. With <c>failsafe</c> the LDT goes (SET_LDT with no entries) while the selectors
/// still name it: the first switch back cannot load them, so the hypervisor loads null ones and enters our
/// failsafe callback. Prints its result and powers off (crash when something was wrong).
/// </summary>
internal static unsafe class SegmentWorkload
{
    private const ushort Ldt1 = 0x000F, Ldt2 = 0x0017, Ldt3 = 0x001F;
    private const ulong DataDpl3 = 0x00CF_F200_0000_FFFFUL, Magic = 0x5E65_0000_0000_0017;
    private const uint FsBase3 = 0x2345_6000;
    private static int s_failsafes;

    public static void Run()
    {
        byte* cmd = Guest.StartInfo + Xen.SI_cmd_line;
        int rounds = 300;
        int at = Workloads.Find(cmd, "rounds=");
        if (at >= 0)
        {
            int n = 0;
            for (byte* p = cmd + at; *p >= (byte)'0' && *p <= (byte)'9' && n < 10000000; p++) n = n * 10 + (*p - '0');
            if (n > 0) rounds = n;
        }
        bool variant2 = Workloads.Find(cmd, "variant=2") >= 0;
        bool failsafe = Workloads.Find(cmd, "failsafe") >= 0;
        bool remap = Workloads.Find(cmd, "remap") >= 0;

        ulong* ldt = (ulong*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
        ulong* word = (ulong*)Internal.Runtime.KernelHeap.AllocateAligned(8, 8);
        for (int i = 0; i < 512; i++) ldt[i] = 0;
        ldt[1] = DataDpl3;
        ldt[2] = DataDpl3;
        ldt[3] = DataDpl3 | ((ulong)(FsBase3 & 0xFF_FFFF) << 16) | ((ulong)(FsBase3 >> 24) << 56);
        *word = Magic;
        long rc = Guest.MakeReadOnly(ldt);
        if (rc == 0) rc = Hypercall.MmuextOp(Xen.MMUEXT_SET_LDT, (ulong)ldt, 4);
        if (rc != 0) Finish(false, "SET_LDT of our page failed", rc);

        ushort* want = stackalloc ushort[4];
        ushort* now = stackalloc ushort[4];
        want[0] = variant2 ? Ldt2 : Ldt1; want[1] = variant2 ? Ldt1 : Ldt2; want[2] = Ldt3; want[3] = variant2 ? Ldt1 : Ldt2;
        Cpu.LoadSelectors(want);
        Traps.Filter = &OnTrap;
        if (failsafe)
        {
            // struct callback_register { uint16_t type; uint16_t flags; xen_callback_t address; }, events masked on entry.
            ulong* cb = stackalloc ulong[2];
            cb[0] = Xen.CALLBACKTYPE_failsafe | (1UL << 16);
            cb[1] = Cpu.Symbol(Cpu.SymFailsafeCallback);
            rc = Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)cb);
            if (rc != 0) Finish(false, "registering the failsafe callback failed", rc);
            // The selectors stay loaded in the CPU, but the LDT they name is gone.
            rc = Hypercall.MmuextOp(Xen.MMUEXT_SET_LDT, 0, 0);
            if (rc != 0) Finish(false, "SET_LDT with no entries failed", rc);
            int yields = 0;
            while (s_failsafes == 0 && yields < rounds) { Hypercall.SchedOp(Xen.SCHEDOP_yield, null); yields++; }
            Cpu.ReadSelectors(now);
            XenConsole.Write("pvtest: workload segments failsafe: callback ");
            XenConsole.Dec(s_failsafes);
            XenConsole.Write(" time(s) after ");
            XenConsole.Dec(yields);
            XenConsole.Write(" yields, DS ES FS GS now ");
            for (int i = 0; i < 4; i++) { XenConsole.Hex(now[i]); XenConsole.Write(" "); }
            XenConsole.Line("");
            Finish(s_failsafes == 1 && now[0] == 0 && now[1] == 0 && now[2] == 0 && now[3] == 0, "", 0);
        }
        for (int round = 1; round <= rounds; round++)
        {
            // remap: a changed LDT (4 or 5 entries) drops its mapped page, so the hypervisor's reload of our
            // selectors at the switch back reads an LDT page that is not mapped: its own #PF maps it.
            if (remap && (rc = Hypercall.MmuextOp(Xen.MMUEXT_SET_LDT, (ulong)ldt, (round & 1) != 0 ? 5UL : 4UL)) != 0)
                Finish(false, "SET_LDT in a round failed", rc);
            Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
            Cpu.ReadSelectors(now);
            ulong read = Cpu.FsRead64((ulong)word - FsBase3);
            bool same = read == Magic && s_failsafes == 0;
            for (int i = 0; i < 4; i++) same &= now[i] == want[i];
            if (same) continue;
            XenConsole.Write("pvtest: workload segments: round ");
            XenConsole.Dec(round);
            XenConsole.Write(": DS ES FS GS ");
            for (int i = 0; i < 4; i++) { XenConsole.Hex(now[i]); XenConsole.Write(" "); }
            XenConsole.Write("fs:[word] ");
            XenConsole.Hex(read);
            XenConsole.Line("");
            Finish(false, "selectors lost", 0);
        }
        XenConsole.Write("pvtest: workload segments done: ");
        XenConsole.Dec(rounds);
        XenConsole.Write(" yields, DS ES FS GS ");
        for (int i = 0; i < 4; i++) { XenConsole.Hex(want[i]); XenConsole.Write(" "); }
        XenConsole.Line("kept, FS reads through its LDT base");
        Finish(true, "", 0);
    }

    private static bool OnTrap(TrapFrame* f)
    {
        if (f->Vector != Traps.VectorFailsafe)
        {
            XenConsole.Write("pvtest: workload segments: trap ");
            XenConsole.Hex(f->Vector);
            XenConsole.Write(" error ");
            XenConsole.Hex(f->ErrorCode);
            XenConsole.Write(" at ");
            XenConsole.Hex(f->Rip);
            XenConsole.Line("");
            return false;
        }
        s_failsafes++;
        return true;
    }

    private static void Finish(bool ok, string why, long rc)
    {
        if (!ok && why.Length != 0)
        {
            XenConsole.Write("pvtest: workload segments: ");
            XenConsole.Write(why);
            XenConsole.Write(" ");
            XenConsole.Dec(rc);
            XenConsole.Line("");
        }
        Hypercall.Shutdown(ok ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }
}
