namespace Microhv.Guests.PvTest;

/// <summary>
/// GNTTABOP_cache_flush on one of our own frames (xen/include/public/grant_table.h struct
/// gnttab_cache_flush { a.dev_bus_addr; offset; length; op }): x86 answers "clean" (with or without
/// "invalidate") with success and "invalidate" alone with -EOPNOTSUPP; the range and operation bits are
/// checked first; a zero length is nothing to do unless a search was being resumed (bits above the
/// command: -EILSEQ); a frame that does not exist is -EINVAL.
/// </summary>
internal static unsafe class GrantCacheFlushChecks
{
    private const uint Clean = 1, Inval = 2;

    public static void Run() => Checks.Run("grant_cache_flush", &CacheFlush);

    private static long Flush(ulong busAddr, ushort offset, ushort length, uint op, ulong cmd = Xen.GNTTABOP_cache_flush)
    {
        ulong* f = stackalloc ulong[2];
        f[0] = busAddr;
        f[1] = offset | (ulong)length << 16 | (ulong)op << 32;
        return Hypercall.Call3(Xen.grant_table_op, cmd, (ulong)f, 1);
    }

    private static void CacheFlush()
    {
        ulong bus = Guest.MfnOf(Guest.Page(14)) << 12;
        Checks.Expect("clean the whole page", Flush(bus, 0, 4096, Clean), 0);
        Checks.Expect("clean and invalidate", Flush(bus, 100, 200, Clean | Inval), 0);
        Checks.Expect("invalidate alone", Flush(bus, 0, 64, Inval), -Xen.EOPNOTSUPP);
        Checks.Expect("unknown operation bit", Flush(bus, 0, 64, 4), -Xen.EINVAL);
        Checks.Expect("offset past the page", Flush(bus, 4096, 0, Clean), -Xen.EINVAL);
        Checks.Expect("range past the page", Flush(bus, 4000, 100, Clean), -Xen.EINVAL);
        Checks.Expect("zero length", Flush(bus, 0, 0, Clean), 0);
        Checks.Expect("zero length while resuming a search", Flush(bus, 0, 0, Clean, Xen.GNTTABOP_cache_flush | 1UL << 12), -Xen.EILSEQ);
        Checks.Expect("no such frame", Flush(0xFFFFFFFFFUL << 12, 0, 64, Clean), -Xen.EINVAL);
    }
}
