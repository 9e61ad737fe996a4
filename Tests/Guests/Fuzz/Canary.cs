namespace Microhv.Guests.Fuzz;

/// <summary>
/// mode=canary: a domain that only holds a pattern. It fills its spare pages with words naming
/// their own frame and offset, re-checks them between short polls, and ends when every fuzzer
/// (fuzzers=N, domains 1..N) has shut down, or fails after <c>wait=</c> seconds (default 600). It
/// learns that from the hypervisor (domctl getdomaininfo: it is the initial, control domain), not
/// from the fuzzers: a fuzzer can send any event or write any text, but it cannot make its domain
/// shut down without ending, so no fuzzer can end the watch early. The verdict goes out on the
/// canary's own console (the initial domain's lines are the only unprefixed ones) and in its exit:
/// poweroff with code 0 only when the pattern held to the end, crash otherwise. The fuzzers look
/// for the pattern in what they manage to map (a leak).
/// </summary>
internal static unsafe class Canary
{
    public const ulong Magic = 0xCA7A11E5UL << 32;
    private const int FirstPage = 1, Pages = 47;
    private const ulong Domctl = 36, XEN_DOMCTL_getdomaininfo = 5, XEN_DOMCTL_INTERFACE_VERSION = 0x15;
    private const uint XEN_DOMINF_shutdown = 1u << 2, XEN_DOMINF_blocked = 1u << 4;

    public static ulong Word(ulong mfn, ulong index) => Magic | (mfn & 0xFFFFF) << 12 | index;

    public static void Run(int fuzzers, ulong seconds)
    {
        for (int p = 0; p < Pages; p++)
        {
            ulong* page = (ulong*)Guest.Page(FirstPage + p);
            ulong mfn = Guest.MfnOf(page);
            for (ulong i = 0; i < 512; i++) page[i] = Word(mfn, i);
        }
        if (fuzzers > 8) fuzzers = 8;
        XenConsole.Write("fuzz: canary holds ");
        XenConsole.Dec(Pages);
        XenConsole.Write(" pages for ");
        XenConsole.Dec(fuzzers);
        XenConsole.Line(" fuzzers");

        ulong checks = 0;
        ulong* poll = stackalloc ulong[3];
        ulong deadline = Guest.SystemTime(out uint _) + seconds * 1000000000UL;
        while (true)
        {
            Check();
            checks++;
            int running = 0;
            for (int f = 1; f <= fuzzers; f++) if (!HasShutDown((ushort)f, out _)) running++;
            if (running == 0) break;
            if (Guest.SystemTime(out uint _) > deadline)
            {
                XenConsole.Write("fuzz: canary: ");
                XenConsole.Dec(running);
                XenConsole.Line(" fuzzers did not finish in time");
                for (int f = 1; f <= fuzzers; f++)
                {
                    if (HasShutDown((ushort)f, out uint flags)) continue;
                    XenConsole.Write("fuzz: canary: d"); XenConsole.Dec(f);
                    XenConsole.Line((flags & XEN_DOMINF_blocked) != 0 ? " is still running, blocked" : " is still running");
                }
                Hypercall.Shutdown(Xen.SHUTDOWN_crash);
            }
            poll[0] = 0; poll[1] = 0; poll[2] = Guest.SystemTime(out uint _) + 5000000;   // no ports: sleep 5 ms
            Hypercall.SchedOp(Xen.SCHEDOP_poll, poll);
        }
        Check();
        XenConsole.Write("fuzz: canary intact after ");
        XenConsole.Udec(checks + 1);
        XenConsole.Line(" checks");
        Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
    }

    /// <summary>domctl getdomaininfo for domain <paramref name="id"/>: shut down (or gone: Xen answers with the
    /// next domain up, or -ESRCH past the last one).</summary>
    private static bool HasShutDown(ushort id, out uint flags)
    {
        ulong* domctl = stackalloc ulong[18];                 // struct xen_domctl, 144 bytes
        for (int i = 0; i < 18; i++) domctl[i] = 0;
        ((uint*)domctl)[0] = (uint)XEN_DOMCTL_getdomaininfo;
        ((uint*)domctl)[1] = (uint)XEN_DOMCTL_INTERFACE_VERSION;
        ((ushort*)domctl)[4] = id;
        long rc = Hypercall.Call1(Domctl, (ulong)domctl);
        flags = ((uint*)domctl)[5];                           // u.getdomaininfo.flags (u at 16, flags at 4)
        if (rc != 0) return true;
        if (((ushort*)domctl)[8] != id) return true;          // u.getdomaininfo.domain: a later one
        return (flags & XEN_DOMINF_shutdown) != 0;
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
