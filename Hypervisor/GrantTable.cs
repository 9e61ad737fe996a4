using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// A domain's grant table, version 1 (xen/common/grant_table.c): frames of struct grant_entry_v1
/// the guest writes to offer its pages to other domains. The frames belong to the domain (it maps
/// them read-write with mmu_update) and grow on setup_table up to <see cref="MaxFrames"/>.
/// Domain has no field for it yet, so tables are found through a small registry keyed by the Domain;
/// <see cref="Create"/> must run when the domain is built, because hypercalls do not allocate objects.
/// Besides the shared entries the table keeps Xen's two private arrays, both allocated here: the
/// active entries (per grant this domain offers: how many mappings pin it and the frame they map)
/// and the maptrack (per mapping this domain made of someone's grant: the handle's granter, ref,
/// flags and frame). A domain that dies with mappings of others' grants keeps them: they are
/// only references on the granted frames and pins on the granters' entries, never released.
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

    /// <summary>Mappings one domain may hold at once (Xen's maptrack grows to 1024 frames of them; a
    /// fixed array here, since a hypercall must not allocate).</summary>
    public const int MaptrackCapacity = 1024;
    /// <summary>A pin count stops here (Xen refuses at bit 7 of each 8-bit pin field; ours are 16-bit).</summary>
    public const ushort MaxPins = 0x7FFF;

    // Active entries, indexed by grant reference: the granter's view of who maps each grant.
    private readonly ushort[] _readPins = new ushort[MaxFrames * EntriesPerFrame];
    private readonly ushort[] _writePins = new ushort[MaxFrames * EntriesPerFrame];
    private readonly ushort[] _activeDomid = new ushort[MaxFrames * EntriesPerFrame];
    private readonly ulong[] _activeMfn = new ulong[MaxFrames * EntriesPerFrame];

    // Maptrack, indexed by handle: the mapper's record of each mapping; flags 0 = free.
    private readonly uint[] _mapFlags = new uint[MaptrackCapacity];
    private readonly ushort[] _mapDomid = new ushort[MaptrackCapacity];
    private readonly uint[] _mapRef = new uint[MaptrackCapacity];
    private readonly ulong[] _mapMfn = new ulong[MaptrackCapacity];
    private int _mapLimit;          // handles at and above it have never been used

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
            // Shared with the guest as Xen's share_xen_page_with_guest does: writable for good, so the
            // hypervisor's writes of grant flags never land in a page table the guest made of it.
            m.FrameTable.SetType(mfn, FrameType.Writable, 1);
            m.FrameTable.SetValidated(mfn, true);
            Frames[NrFrames++] = mfn;
        }
        return true;
    }

    /// <summary>Reads grant entry <paramref name="gref"/>; false past the end of the table.</summary>
    public bool ReadEntry(uint gref, out ushort flags, out ushort domid, out uint frame)
    {
        flags = 0; domid = 0; frame = 0;
        if (gref >= NrEntries) return false;
        ulong at = EntryAddress(gref);
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

    /// <summary>Machine address of grant entry <paramref name="gref"/>'s flags (the caller checked the bound).</summary>
    private ulong EntryAddress(uint gref)
        => (Frames[gref / EntriesPerFrame] << Layout.PageShift) + (gref % (uint)EntriesPerFrame) * (ulong)Gnttab.entry_v1_size;

    public void SetEntryFlags(uint gref, ushort set) { ulong at = EntryAddress(gref); Domain.Machine.Memory.Write16(at, (ushort)(Domain.Machine.Memory.Read16(at) | set)); }
    public void ClearEntryFlags(uint gref, ushort clear) { ulong at = EntryAddress(gref); Domain.Machine.Memory.Write16(at, (ushort)(Domain.Machine.Memory.Read16(at) & ~clear)); }

    // Active entries (the caller checked gref < NrEntries).
    public bool IsPinned(uint gref) => _readPins[gref] != 0 || _writePins[gref] != 0;
    public ushort ReadPins(uint gref) => _readPins[gref];
    public ushort WritePins(uint gref) => _writePins[gref];
    public ushort ActiveDomid(uint gref) => _activeDomid[gref];
    public ulong ActiveMfn(uint gref) => _activeMfn[gref];

    /// <summary>Records the frame and the mapping domain when a grant gets its first pin.</summary>
    public void Activate(uint gref, ushort domid, ulong mfn) { _activeDomid[gref] = domid; _activeMfn[gref] = mfn; }

    public void Pin(uint gref, bool readOnly) { if (readOnly) _readPins[gref]++; else _writePins[gref]++; }
    public void Unpin(uint gref, bool readOnly)
    {
        if (readOnly) { if (_readPins[gref] != 0) _readPins[gref]--; }
        else if (_writePins[gref] != 0) _writePins[gref]--;
    }

    /// <summary>get_maptrack_handle: a free handle, or -1 when all <see cref="MaptrackCapacity"/> are in use.</summary>
    public int AllocateHandle()
    {
        for (int h = 0; h < _mapLimit; h++) if (_mapFlags[h] == 0) return h;
        return _mapLimit < MaptrackCapacity ? _mapLimit : -1;
    }

    /// <summary>Fills handle <paramref name="h"/> (from AllocateHandle) with a mapping; flags must be non-zero.</summary>
    public void SetMapping(int h, ushort domid, uint gref, ulong mfn, uint flags)
    {
        _mapDomid[h] = domid; _mapRef[h] = gref; _mapMfn[h] = mfn; _mapFlags[h] = flags;
        if (h >= _mapLimit) _mapLimit = h + 1;
    }

    /// <summary>The mapping behind handle <paramref name="h"/>; false for a handle out of range or free.</summary>
    public bool GetMapping(uint h, out ushort domid, out uint gref, out ulong mfn, out uint flags)
    {
        domid = 0; gref = 0; mfn = 0; flags = 0;
        if (h >= MaptrackCapacity || _mapFlags[h] == 0) return false;
        domid = _mapDomid[h]; gref = _mapRef[h]; mfn = _mapMfn[h]; flags = _mapFlags[h];
        return true;
    }

    /// <summary>Replaces a live handle's flags; 0 frees the handle.</summary>
    public void SetMappingFlags(uint h, uint flags) { if (h < MaptrackCapacity) _mapFlags[h] = flags; }

    /// <summary>Live mappings this domain holds of <paramref name="mfn"/>; <paramref name="writable"/> counts the read-write ones.</summary>
    public int MappingsOf(ulong mfn, out int writable)
    {
        int n = 0;
        writable = 0;
        for (int h = 0; h < _mapLimit; h++)
        {
            if ((_mapFlags[h] & Gnttab.GNTMAP_host_map) == 0 || _mapMfn[h] != mfn) continue;
            n++;
            if ((_mapFlags[h] & Gnttab.GNTMAP_readonly) == 0) writable++;
        }
        return n;
    }

    /// <summary>True when <paramref name="d"/> holds a host mapping of <paramref name="mfn"/> through its maptrack.</summary>
    public static bool MapsGrantedFrame(Domain d, ulong mfn)
    {
        GrantTable gt = Of(d);
        return gt != null && gt.MappingsOf(mfn, out int _) != 0;
    }

    public static GrantTable Of(Domain d) => d.GrantTable;

    private static void Register(Domain d, GrantTable gt) => d.GrantTable = gt;
}
