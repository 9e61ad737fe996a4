namespace Microhv.Guests.PvTest;

/// <summary>
/// <c>workload=balloon [rounds=N]</c> (and <c>balloon-crash</c>, which dies halfway): what a balloon driver does,
/// hard. Each round gives the frames of our last 16 guest frames back (decrease_reservation) and takes
/// new ones at the same guest frames (populate_physmap), checks that each new frame is ours in the M2P
/// and zero, and dirties it, so the frames that pass between domains carry a pattern that must never
/// show up in another domain. Several such domains at once are a soak of the hypervisor's frame
/// accounting: every frame must be free again when the last one ended.
/// </summary>
internal static unsafe class Balloon
{
    private const int Pages = 16, DefaultRounds = 400;

    public static void Run(bool crash)
    {
        int rounds = DefaultRounds;
        byte* cmd = Guest.StartInfo + Xen.SI_cmd_line;
        int at = Workloads.Find(cmd, "rounds=");
        if (at >= 0)
        {
            int n = 0;
            for (byte* p = cmd + at; *p >= (byte)'0' && *p <= (byte)'9' && n < 10000000; p++) n = n * 10 + (*p - '0');
            if (n > 0) rounds = n;
        }
        if (Guest.WindowL1 == null) { XenConsole.Line("pvtest: workload balloon: no window"); Hypercall.Shutdown(Xen.SHUTDOWN_crash); }
        ulong* list = stackalloc ulong[Pages];
        ulong* r = stackalloc ulong[4];          // struct xen_memory_reservation
        r[0] = (ulong)list; r[1] = Pages; r[2] = 0; r[3] = Xen.DOMID_SELF;
        ulong first = Guest.NrPages - Pages, pattern = 0xB0B0_0000_0000_0000UL | ((ulong)Guest.MfnOf(Guest.StartInfo) << 16);
        ulong checkedZero = 0;
        for (int round = 1; round <= rounds; round++)
        {
            for (int i = 0; i < Pages; i++) list[i] = Guest.P2m[first + (ulong)i];
            long rc = Hypercall.MemoryOp(Xen.XENMEM_decrease_reservation, r);
            if (rc != Pages) Fail("decrease_reservation", round, rc);
            for (int i = 0; i < Pages; i++) list[i] = first + (ulong)i;
            rc = Hypercall.MemoryOp(Xen.XENMEM_populate_physmap, r);
            if (rc != Pages) Fail("populate_physmap", round, rc);
            for (int i = 0; i < Pages; i++)
            {
                ulong mfn = list[i], pfn = first + (ulong)i;
                if (Guest.M2p[mfn] != pfn) Fail("M2P of a new frame", round, (long)Guest.M2p[mfn]);
                Guest.P2m[pfn] = mfn;
                rc = Guest.MapInWindow(Guest.WindowTest, mfn, true);
                if (rc != 0) Fail("mapping a new frame", round, rc);
                ulong* page = (ulong*)Guest.WindowPage(Guest.WindowTest);
                for (int w = 0; w < 512; w++)
                {
                    if (page[w] != 0) Fail("a new frame is not zero", round, (long)page[w]);
                    page[w] = pattern | (ulong)round;
                }
                checkedZero++;
                Guest.UnmapInWindow(Guest.WindowTest);
            }
            if (crash && round == rounds / 2)
            {
                XenConsole.Line("pvtest: workload balloon-crash: crashing with its frames ballooned");
                Hypercall.Call1(Xen.set_trap_table, 0);
                Cpu.Write64(0x10, 1);
            }
        }
        XenConsole.Write("pvtest: workload balloon done, "); XenConsole.Dec(rounds); XenConsole.Write(" rounds, ");
        XenConsole.Udec(checkedZero); XenConsole.Line(" new frames zero");
        Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
    }

    private static void Fail(string what, int round, long value)
    {
        XenConsole.Write("pvtest: workload balloon: "); XenConsole.Write(what); XenConsole.Write(" in round ");
        XenConsole.Dec(round); XenConsole.Write(": "); XenConsole.Hex((ulong)value); XenConsole.Line("");
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }
}
