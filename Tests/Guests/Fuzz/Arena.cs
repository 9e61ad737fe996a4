namespace Microhv.Guests.Fuzz;

/// <summary>
/// Request structures for the current call (operation arrays, argument structs, extent lists), laid
/// out in the first scratch pages. Reset before every top-level call; a multicall's entries and
/// their structures share it. Filled with random words first, so unused fields are junk too.
/// </summary>
internal static unsafe class Arena
{
    private const ulong Size = Sandbox.ArenaPages * 4096UL;
    private static ulong s_used;

    private static ulong s_listBottom;

    public static void Reset() { s_used = 0; s_listBottom = Sandbox.ScratchVa + Sandbox.ScratchPages * 4096UL; }

    /// <summary>
    /// An array the hypervisor walks with a count we may have made absurd (multicall entries, mmu_update
    /// requests, grant operations): laid out downward from the end of the scratch slots, so walking past
    /// it reads the arrays built before it and then the window's unmapped grant slot (-EFAULT), never
    /// junk that would decode as a request against our own mappings (as Xen would execute it too).
    /// </summary>
    public static ulong* AllocList(ulong bytes)
    {
        bytes = (bytes + 7) & ~7UL;
        ulong floor = Sandbox.ScratchPage(Sandbox.FirstListPage);
        if (s_listBottom - bytes < floor) s_listBottom = Sandbox.ScratchVa + Sandbox.ScratchPages * 4096UL;
        s_listBottom -= bytes;
        ulong* p = (ulong*)s_listBottom;
        for (ulong i = 0; i < bytes / 8; i++) p[i] = 0;
        return p;
    }

    /// <summary><paramref name="bytes"/> of junk-filled, 8-byte aligned request memory.</summary>
    public static ulong* Alloc(ulong bytes)
    {
        bytes = (bytes + 7) & ~7UL;
        if (bytes > Size) bytes = Size;
        if (s_used + bytes > Size) s_used = 0;
        ulong* p = (ulong*)(Sandbox.ScratchVa + s_used);
        s_used += bytes;
        for (ulong i = 0; i < bytes / 8; i++) p[i] = Rng.OneIn(2) ? Rng.Below(16) : Sandbox.Value();
        return p;
    }
}
