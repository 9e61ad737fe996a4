namespace Microhv.Guests.Fuzz;

/// <summary>
/// mode=canary: a domain that only holds a pattern. It fills its spare pages with words naming
/// their own frame and offset, re-checks them between short polls, and ends when every fuzzer
/// (fuzzers=N) has signalled it is done on an event channel it offered that fuzzer
/// (EVTCHNOP_alloc_unbound), or fails after <c>wait=</c> seconds (default 600). Any changed word is a hypervisor failure: it is printed and the
/// canary crashes. The fuzzers look for the pattern in what they manage to map (a leak).
/// </summary>
internal static unsafe class Canary
{
    public const ulong Magic = 0xCA7A11E5UL << 32;
    private const int FirstPage = 1, Pages = 47;

    public static ulong Word(ulong mfn, ulong index) => Magic | (mfn & 0xFFFFF) << 12 | index;

    public static void Run(int fuzzers, ulong seconds)
    {
        for (int p = 0; p < Pages; p++)
        {
            ulong* page = (ulong*)Guest.Page(FirstPage + p);
            ulong mfn = Guest.MfnOf(page);
            for (ulong i = 0; i < 512; i++) page[i] = Word(mfn, i);
        }
        uint* ports = stackalloc uint[8];
        if (fuzzers > 8) fuzzers = 8;
        uint* alloc = stackalloc uint[3];
        for (int f = 0; f < fuzzers; f++)
        {
            alloc[0] = 0x7FF0 | (uint)(1 + f) << 16;   // dom SELF, remote_dom f+1
            alloc[1] = 0;
            long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_alloc_unbound, alloc);
            ports[f] = rc == 0 ? alloc[1] : 0;   // struct evtchn_alloc_unbound {dom, remote_dom; port}
        }
        XenConsole.Write("fuzz: canary holds ");
        XenConsole.Dec(Pages);
        XenConsole.Write(" pages for ");
        XenConsole.Dec(fuzzers);
        XenConsole.Line(" fuzzers");

        ulong checks = 0;
        int done = 0;
        bool* seen = stackalloc bool[8];
        ulong* poll = stackalloc ulong[3];
        ulong deadline = Guest.SystemTime(out uint _) + seconds * 1000000000UL;
        while (true)
        {
            Check();
            checks++;
            if (done == fuzzers) break;
            if (Guest.SystemTime(out uint _) > deadline)
            {
                XenConsole.Write("fuzz: canary: ");
                XenConsole.Dec(fuzzers - done);
                XenConsole.Line(" fuzzers did not finish in time");
                Hypercall.Shutdown(Xen.SHUTDOWN_crash);
            }
            poll[0] = (ulong)ports; poll[1] = (ulong)fuzzers; poll[2] = Guest.SystemTime(out uint _) + 5000000;
            Hypercall.SchedOp(Xen.SCHEDOP_poll, poll);
            ulong* pending = (ulong*)(Guest.SharedInfo + Xen.SH_evtchn_pending);
            for (int f = 0; f < fuzzers; f++)
            {
                uint port = ports[f];
                if (seen[f] || port == 0) continue;
                if (Cpu.TestAndClearBit(&pending[port / 64], (int)(port % 64)) != 0) { seen[f] = true; done++; }
            }
        }
        XenConsole.Write("fuzz: canary intact after ");
        XenConsole.Udec(checks);
        XenConsole.Line(" checks");
        Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
    }

    private static void Check()
    {
        for (int p = 0; p < Pages; p++)
        {
            ulong* page = (ulong*)Guest.Page(FirstPage + p);
            ulong mfn = Guest.MfnOf(page);
            for (ulong i = 0; i < 512; i++)
            {
                ulong w = Cpu.Read64((ulong)&page[i]);
                if (w == Word(mfn, i)) continue;
                XenConsole.Write("fuzz: canary changed: pfn ");
                XenConsole.Hex(Guest.PfnOf(page));
                XenConsole.Write(" word ");
                XenConsole.Udec(i);
                XenConsole.Write(" is ");
                XenConsole.Hex(w);
                XenConsole.Line("");
                Hypercall.Shutdown(Xen.SHUTDOWN_crash);
            }
        }
    }

    /// <summary>For the fuzzer: does this page hold the canary's pattern?</summary>
    public static bool Leaked(ulong* page)
    {
        for (int i = 0; i < 512; i += 37)
            if ((Cpu.Read64((ulong)&page[i]) & 0xFFFFFFFF00000000UL) == Magic) return true;
        return false;
    }
}
