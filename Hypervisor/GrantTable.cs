using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// A domain's grant table, version 1 (xen/common/grant_table.c): frames of struct grant_entry_v1
/// the guest writes to offer its pages to other domains. The frames belong to the domain (it maps
/// them read-write with mmu_update) and grow on setup_table up to <see cref="MaxFrames"/>.
/// Domain has no field for it yet, so tables are found through a small registry keyed by the Domain;
/// <see cref="Create"/> must run when the domain is built, because hypercalls do not allocate objects.
/// </summary>
public sealed class GrantTable
{
    /// <summary>Xen's default is 64 frames; four (2048 entries) serve the few devices a Microhv guest has.</summary>
    public const int MaxFrames = 4;
    public const int EntriesPerFrame = (int)Layout.PageSize / Gnttab.entry_v1_size;

    public readonly Domain Domain;
    /// <summary>Machine frame numbers of the table's frames; the first <see cref="NrFrames"/> are in use.</summary>
    public readonly ulong[] Frames = new ulong[MaxFrames];
    public int NrFrames;
    /// <summary>The grant-table ABI version in use: 1 (version 2 is not offered).</summary>
    public uint Version = 1;

    private GrantTable(Domain d) { Domain = d; }

    public uint NrEntries => (uint)(NrFrames * EntriesPerFrame);

    /// <summary>Creates the table of <paramref name="d"/> with one frame (as Xen starts); null if no frame is left.
    /// Call once when the domain is built.</summary>
    public static GrantTable Create(Domain d)
    {
        GrantTable existing = Of(d);
        if (existing != null) return existing;
        GrantTable gt = new GrantTable(d);
        if (!gt.Grow(1)) return null;
        Register(d, gt);
        return gt;
    }

    /// <summary>Grows the table to <paramref name="nrFrames"/> frames (never shrinks): each new frame is
    /// zeroed (all grants invalid) and given to the domain. False when the limit or memory runs out.</summary>
    public bool Grow(int nrFrames)
    {
        if (nrFrames > MaxFrames) return false;
        Machine m = Domain.Machine;
        while (NrFrames < nrFrames)
        {
            if (!m.Frames.TryAllocateFrame(out ulong pa)) return false;
            ulong mfn = pa >> Layout.PageShift;
            if (!m.FrameTable.IsValid(mfn)) return false;
            m.Memory.Fill(pa, 0, Layout.PageSize);
            m.FrameTable.SetOwner(mfn, Domain.DomainId);
            Frames[NrFrames++] = mfn;
        }
        return true;
    }

    /// <summary>Reads grant entry <paramref name="gref"/>; false past the end of the table.</summary>
    public bool ReadEntry(uint gref, out ushort flags, out ushort domid, out uint frame)
    {
        flags = 0; domid = 0; frame = 0;
        if (gref >= NrEntries) return false;
        ulong at = (Frames[gref / EntriesPerFrame] << Layout.PageShift) + (gref % (uint)EntriesPerFrame) * (ulong)Gnttab.entry_v1_size;
        PhysicalMemory mem = Domain.Machine.Memory;
        flags = mem.Read16(at + Gnttab.entry_v1_flags);
        domid = mem.Read16(at + Gnttab.entry_v1_domid);
        frame = mem.Read32(at + Gnttab.entry_v1_frame);
        return true;
    }

    /// <summary>True when <paramref name="mfn"/> is one of <paramref name="d"/>'s grant-table frames (they must never be given back).</summary>
    public static bool IsGrantFrame(Domain d, ulong mfn)
    {
        GrantTable gt = Of(d);
        if (gt == null) return false;
        for (int i = 0; i < gt.NrFrames; i++) if (gt.Frames[i] == mfn) return true;
        return false;
    }

    public static GrantTable Of(Domain d) => d.GrantTable;

    private static void Register(Domain d, GrantTable gt) => d.GrantTable = gt;
}
