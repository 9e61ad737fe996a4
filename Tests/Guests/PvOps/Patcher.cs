namespace Microhv.Guests.PvOps;

/// <summary>
/// Load-time patching of the paravirt call sites (docs/abi-rom.md §9), as Linux's apply_paravirt and
/// VMI's relocations: once the backend has bound every operation, each site in the table pvsites.sh
/// generated becomes the native bytes inline, NOPs, or a direct call to the bound function (a ROM entry,
/// or the backend's C#). A site that no longer holds the call to its stub is left alone (it still works,
/// through the stub) and counted as skipped.
/// </summary>
public static unsafe class Patcher
{
    private const int EntrySize = 24;
    public static int Sites, Calls, Natives, Nops, Skipped;

    public static void Apply()
    {
        Paravirt.Table(out ulong stubs, out ulong* slots, out byte* table, out byte* end);
        byte* code = stackalloc byte[16];
        for (byte* e = table; e + EntrySize <= end; e += EntrySize)
        {
            ulong site = *(ulong*)e;
            int call = *(ushort*)(e + 8), length = e[10], nativeLength = e[12];
            bool tail = e[11] != 0;
            Sites++;
            if (call >= Paravirt.Calls || length > 16 || !SitePatch.IsBranchTo((byte*)site, length, tail, site, stubs + 8 * (ulong)call))
            {
                Skipped++;
                continue;
            }
            byte how = Paravirt.HowOf(call);
            if (how == Paravirt.HowNop) { SitePatch.Nop(code, length, tail); Nops++; }
            else if (how == Paravirt.HowNative && SitePatch.Native(code, length, tail, e + 16, nativeLength)) Natives++;
            else if (SitePatch.Branch(code, length, tail, site, slots[call])) Calls++;
            else { Skipped++; continue; }
            for (int i = 0; i < length; i++) ((byte*)site)[i] = code[i];
        }
    }

    /// <summary>`pvops: patched N sites: C call, N native, P nop[, S skipped]`.</summary>
    public static void Report()
    {
        Log.Write("pvops: patched "); Log.Dec((ulong)Sites); Log.Write(" sites: ");
        Log.Dec((ulong)Calls); Log.Write(" call, "); Log.Dec((ulong)Natives); Log.Write(" native, "); Log.Dec((ulong)Nops); Log.Write(" nop");
        if (Skipped != 0) { Log.Write(", "); Log.Dec((ulong)Skipped); Log.Write(" skipped"); }
        Log.Line("");
    }
}
