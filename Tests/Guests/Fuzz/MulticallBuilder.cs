namespace Microhv.Guests.Fuzz;

/// <summary>
/// multicall(list, nr_calls): up to eight entries {op, result, args[6]} built by the same generator,
/// with the count and the list pointer sometimes absurd (Xen's uint32 count, a list at 0x10).
/// </summary>
internal static unsafe class MulticallBuilder
{
    public static void Build(ref HostileCall c)
    {
        int n = 1 + Rng.Int(8);
        ulong* list = Arena.AllocList((ulong)n * 64);
        for (int i = 0; i < n; i++)
        {
            HostileCall e = default;
            Generator.Next(ref e, 1);
            ulong* entry = list + i * 8;
            entry[0] = e.Nr; entry[1] = 0xDEAD;
            entry[2] = e.A1; entry[3] = e.A2; entry[4] = e.A3; entry[5] = e.A4; entry[6] = e.A5; entry[7] = 0;
        }
        // A wild list (our read-only page tables, say) holds any entries, set_trap_table(NULL) among them.
        c.RestoreTraps = c.RestoreCallbacks = true;
        c.A1 = Rng.OneIn(10) ? Sandbox.Va() : (ulong)list;
        c.A2 = Rng.OneIn(6) ? Sandbox.Count() : (ulong)n;
    }
}
