using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// A domain's grant table (xen/common/grant_table.c): frames of grant entries the guest writes to
/// offer its pages to other domains, struct grant_entry_v1 or, after set_version 2, grant_entry_v2
/// with the GTF_reading/GTF_writing status moved to separate status frames. The frames belong to
/// the domain (it maps them read-write with mmu_update) and grow on setup_table up to
/// <see cref="MaxFrames"/>. <see cref="Create"/> must run when the domain is built, because
/// hypercalls do not allocate objects. Besides the shared entries the table keeps Xen's two private
/// arrays, both allocated here: the active entries (per grant this domain offers: how many mappings
/// and copies pin it, for which domain, the frame and the sub-page range) and the maptrack (per
/// mapping this domain made of someone's grant: the handle's granter, ref, flags and frame).
/// </summary>
public sealed class GrantTable
{
    /// <summary>Xen's default is 64 frames; four (2048 v1 entries) serve the few devices a Microhv guest has.</summary>
    public const int MaxFrames = 4;
    public const int EntriesPerFrame = (int)Layout.PageSize / Gnttab.entry_v1_size;
    public const int EntriesPerFrameV2 = (int)Layout.PageSize / Gnttab.entry_v2_size;
    /// <summary>grant_to_status_frames(MaxFrames): one 16-bit status per version-2 entry.</summary>
    public const int MaxStatusFrames = (MaxFrames * EntriesPerFrameV2 * 2 + (int)Layout.PageSize - 1) / (int)Layout.PageSize;
    /// <summary>GNTTAB_NR_RESERVED_ENTRIES: the toolstack's grants (console, xenstore), kept across set_version.</summary>
    public const uint NrReservedEntries = 8;

    public readonly Domain Domain;
    /// <summary>Machine frame numbers of the table's frames; the first <see cref="NrFrames"/> are in use.</summary>
    public readonly ulong[] Frames = new ulong[MaxFrames];
    public int NrFrames;
    /// <summary>Version 2's status frames (grant_status_t per entry); none in version 1.</summary>
    public readonly ulong[] StatusFrames = new ulong[MaxStatusFrames];
    public int NrStatusFrames;
    /// <summary>The grant-table ABI version in use: 1 or 2 (GNTTABOP_set_version).</summary>
    public uint Version = 1;
    /// <summary>The highest version the domain may ask for (Xen's max_version: createdomain's grant_opts, 2 for the
    /// domains Microhv builds itself, as Xen's dom0 gets opt_gnttab_max_version).</summary>
    public uint MaxVersion = 2;
    /// <summary>set_version's copy of the reserved entries across a switch, in grant_entry_v1's layout
    /// (allocated here: a hypercall does not allocate).</summary>
    internal readonly ulong[] ReservedScratch = new ulong[NrReservedEntries];

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
    private readonly ushort[] _activeStart = new ushort[MaxFrames * EntriesPerFrame];
    private readonly ushort[] _activeLength = new ushort[MaxFrames * EntriesPerFrame];
    private readonly bool[] _activeSubPage = new bool[MaxFrames * EntriesPerFrame];
    // Version 2's transitive grants: the domain and reference a copy through this grant really pinned
    // (act->trans_domain, act->trans_gref); the granter itself and the same reference otherwise.
    private readonly ushort[] _activeTransDomid = new ushort[MaxFrames * EntriesPerFrame];
    private readonly uint[] _activeTransGref = new uint[MaxFrames * EntriesPerFrame];

    // Maptrack, indexed by handle: the mapper's record of each mapping; flags 0 = free.
    private readonly uint[] _mapFlags = new uint[MaptrackCapacity];
    private readonly ushort[] _mapDomid = new ushort[MaptrackCapacity];
    private readonly uint[] _mapRef = new uint[MaptrackCapacity];
    private readonly ulong[] _mapMfn = new ulong[MaptrackCapacity];
    private int _mapLimit;          // handles at and above it have never been used

    private GrantTable(Domain d) { Domain = d; }

    public uint NrEntries => (uint)(NrFrames * EntriesPerFrameNow);

    /// <summary>Creates the table of <paramref name="d"/> with one frame (as Xen starts); null if no frame is left.
    /// Call once when the domain is built.</summary>
    public static GrantTable Create(Domain d)
    {
        GrantTable gt = Of(d);
        if (gt != null && gt.NrFrames > 0) return gt;
        if (gt == null) gt = new GrantTable(d);
        if (!gt.Grow(1)) return null;
        Register(d, gt);
        return gt;
    }

    /// <summary>Gives a pooled domain its (empty) table object at boot, so that <see cref="Create"/> at
    /// domctl createdomain only takes frames and allocates no object.</summary>
    public static void Reserve(Domain d)
    {
        if (Of(d) == null) d.GrantTable = new GrantTable(d);
    }

    /// <summary>Forgets every frame, pin and mapping (a pooled domain being reused; its frames were given back).</summary>
    public void Clear()
    {
        Zero.Fill(Frames);
        NrFrames = 0;
        Zero.Fill(StatusFrames);
        NrStatusFrames = 0;
        Version = 1;
        MaxVersion = 2;
        Zero.Fill(ReservedScratch);
        Zero.Fill(_readPins); Zero.Fill(_writePins); Zero.Fill(_activeDomid); Zero.Fill(_activeMfn);
        Zero.Fill(_activeStart); Zero.Fill(_activeLength); Zero.Fill(_activeSubPage);
        Zero.Fill(_activeTransDomid); Zero.Fill(_activeTransGref);
        Zero.Fill(_mapFlags); Zero.Fill(_mapDomid); Zero.Fill(_mapRef); Zero.Fill(_mapMfn);
        _mapLimit = 0;
    }

    /// <summary>True when the table has no frame yet (a reserved object of a pooled domain).</summary>
    public bool IsEmpty => NrFrames == 0;

    /// <summary>Grows the table to <paramref name="nrFrames"/> frames (never shrinks), and in version 2 its
    /// status frames to match: each new frame is zeroed (all grants invalid) and given to the domain.
    /// False when the limit or memory runs out.</summary>
    public bool Grow(int nrFrames)
    {
        if (nrFrames > MaxFrames) return false;
        while (NrFrames < nrFrames)
        {
            if (!AllocateShared(out ulong mfn)) return false;
            Frames[NrFrames++] = mfn;
        }
        return Version == 1 || PopulateStatusFrames();
    }

    /// <summary>gnttab_populate_status_frames: status frames for every entry of the shared frames.</summary>
    public bool PopulateStatusFrames()
    {
        int needed = (NrFrames * EntriesPerFrameV2 * 2 + (int)Layout.PageSize - 1) / (int)Layout.PageSize;
        while (NrStatusFrames < needed)
        {
            if (!AllocateShared(out ulong mfn)) return false;
            StatusFrames[NrStatusFrames++] = mfn;
        }
        return true;
    }

    /// <summary>gnttab_unpopulate_status_frames for a PV domain: -EBUSY, and nothing changes, while any status
    /// frame holds a reference (the guest, or another domain, still maps it); else every status frame goes
    /// back to the pool.</summary>
    public long UnpopulateStatusFrames()
    {
        Machine m = Domain.Machine;
        for (int i = 0; i < NrStatusFrames; i++)
            if (m.FrameTable.RefCount(StatusFrames[i]) != 0) return -Errno.EBUSY;
        for (int i = 0; i < NrStatusFrames; i++)
        {
            DomainRelinquish.FreeFrame(m, StatusFrames[i]);
            StatusFrames[i] = 0;
        }
        NrStatusFrames = 0;
        return 0;
    }

    /// <summary>A zeroed frame shared with the domain as Xen's share_xen_page_with_guest does: writable
    /// for good, so the hypervisor's writes of grant flags never land in a page table the guest made of it.</summary>
    private bool AllocateShared(out ulong mfn)
    {
        mfn = 0;
        Machine m = Domain.Machine;
        if (!m.Frames.TryAllocateFrame(out ulong pa)) return false;
        mfn = pa >> Layout.PageShift;
        if (!m.FrameTable.IsValid(mfn)) return false;
        m.Memory.Fill(pa, 0, Layout.PageSize);
        m.FrameTable.SetOwner(mfn, Domain.DomainId);
        m.FrameTable.SetType(mfn, FrameType.Writable, 1);
        m.FrameTable.SetValidated(mfn, true);
        return true;
    }

    /// <summary>Entries in one frame of the shared table: 512 of grant_entry_v1, 256 of grant_entry_v2.</summary>
    public int EntriesPerFrameNow => Version == 1 ? EntriesPerFrame : EntriesPerFrameV2;

    /// <summary>Machine address of grant entry <paramref name="gref"/>'s header (the caller checked the bound).</summary>
    internal ulong EntryAddress(uint gref)
    {
        uint per = (uint)EntriesPerFrameNow;
        int size = Version == 1 ? Gnttab.entry_v1_size : Gnttab.entry_v2_size;
        return (Frames[gref / per] << Layout.PageShift) + (gref % per) * (ulong)size;
    }

    /// <summary>Machine address of the flags word that carries GTF_reading/GTF_writing for <paramref name="gref"/>:
    /// the entry's own flags in version 1, its grant_status_t in the status frames in version 2.</summary>
    internal ulong StatusAddress(uint gref)
    {
        if (Version == 1) return EntryAddress(gref);
        const uint per = (uint)(Layout.PageSize / 2);
        return (StatusFrames[gref / per] << Layout.PageShift) + (gref % per) * 2UL;
    }

    /// <summary>Reads grant entry <paramref name="gref"/>'s header and full-page frame (version 2: full_page.frame,
    /// or sub_page.frame, the same field); false past the end of the table.</summary>
    public bool ReadEntry(uint gref, out ushort flags, out ushort domid, out ulong frame)
    {
        flags = 0; domid = 0; frame = 0;
        if (gref >= NrEntries) return false;
        ulong at = EntryAddress(gref);
        PhysicalMemory mem = Domain.Machine.Memory;
        flags = mem.Read16(at + Gnttab.entry_v1_flags);
        domid = mem.Read16(at + Gnttab.entry_v1_domid);
        frame = Version == 1 ? mem.Read32(at + Gnttab.entry_v1_frame) : mem.Read64(at + Gnttab.entry_v2_frame);
        return true;
    }

    /// <summary>Version 2's sub_page fields of <paramref name="gref"/> (the caller checked the bound).</summary>
    public void ReadSubPage(uint gref, out ushort pageOff, out ushort length)
    {
        ulong at = EntryAddress(gref);
        pageOff = Domain.Machine.Memory.Read16(at + Gnttab.entry_v2_page_off);
        length = Domain.Machine.Memory.Read16(at + Gnttab.entry_v2_length);
    }

    /// <summary>Version 2's transitive fields of <paramref name="gref"/> (the caller checked the bound).</summary>
    public void ReadTransitive(uint gref, out ushort transDomid, out uint transGref)
    {
        ulong at = EntryAddress(gref);
        transDomid = Domain.Machine.Memory.Read16(at + Gnttab.entry_v2_trans_domid);
        transGref = Domain.Machine.Memory.Read32(at + Gnttab.entry_v2_trans_gref);
    }

    /// <summary>
    /// The checks of Xen's _set_status before a grant's first pin (<paramref name="pinned"/> false):
    /// permit_access (not a sub-page one when <paramref name="mapping"/>, Xen maps whole pages only; in
    /// version 2 a copy also takes GTF_transitive) and for <paramref name="ldomid"/>; and for a writable
    /// pin, not GTF_readonly. General_error otherwise.
    /// </summary>
    public short CheckEntry(uint gref, ushort ldomid, bool readOnly, bool pinned, bool mapping, out ulong frame)
    {
        ReadEntry(gref, out ushort flags, out ushort domid, out frame);
        int type = flags & (Gnttab.GTF_type_mask | (mapping ? Gnttab.GTF_sub_page : 0));
        bool typeOk = type == Gnttab.GTF_permit_access || (Version == 2 && !mapping && type == Gnttab.GTF_transitive);
        if (!pinned && (!typeOk || domid != ldomid)) return Gnttab.GNTST_general_error;
        if (!readOnly && (flags & Gnttab.GTF_readonly) != 0) return Gnttab.GNTST_general_error;
        return Gnttab.GNTST_okay;
    }

    /// <summary>Sets GTF_reading, and GTF_writing unless read-only, where the granter reads them.</summary>
    public void MarkInUse(uint gref, bool readOnly)
    {
        ulong at = StatusAddress(gref);
        ushort set = readOnly ? Gnttab.GTF_reading : (ushort)(Gnttab.GTF_reading | Gnttab.GTF_writing);
        Domain.Machine.Memory.Write16(at, (ushort)(Domain.Machine.Memory.Read16(at) | set));
    }

    public void ClearStatusFlags(uint gref, ushort clear)
    {
        ulong at = StatusAddress(gref);
        Domain.Machine.Memory.Write16(at, (ushort)(Domain.Machine.Memory.Read16(at) & ~clear));
    }

    /// <summary>True when <paramref name="mfn"/> is one of <paramref name="d"/>'s grant-table frames (they must never be given back).</summary>
    public static bool IsGrantFrame(Domain d, ulong mfn)
    {
        GrantTable gt = Of(d);
        if (gt == null) return false;
        for (int i = 0; i < gt.NrFrames; i++) if (gt.Frames[i] == mfn) return true;
        for (int i = 0; i < gt.NrStatusFrames; i++) if (gt.StatusFrames[i] == mfn) return true;
        return false;
    }

    // Active entries (the caller checked gref < NrEntries).
    public bool IsPinned(uint gref) => _readPins[gref] != 0 || _writePins[gref] != 0;
    public ushort ReadPins(uint gref) => _readPins[gref];
    public ushort WritePins(uint gref) => _writePins[gref];
    public ushort ActiveDomid(uint gref) => _activeDomid[gref];
    public ulong ActiveMfn(uint gref) => _activeMfn[gref];

    /// <summary>Records the frame and the mapping domain when a grant gets its first pin.</summary>
    public void Activate(uint gref, ushort domid, ulong mfn) => Activate(gref, domid, mfn, false, 0, (ushort)Layout.PageSize);

    public void Activate(uint gref, ushort domid, ulong mfn, bool subPage, ushort start, ushort length)
        => Activate(gref, domid, mfn, subPage, start, length, Domain.DomainId, gref);

    public void Activate(uint gref, ushort domid, ulong mfn, bool subPage, ushort start, ushort length, ushort transDomid, uint transGref)
    {
        _activeDomid[gref] = domid; _activeMfn[gref] = mfn;
        _activeSubPage[gref] = subPage; _activeStart[gref] = start; _activeLength[gref] = length;
        _activeTransDomid[gref] = transDomid; _activeTransGref[gref] = transGref;
    }

    /// <summary>The grant a pinned transitive grant pinned in turn; the granter's own id and <paramref name="gref"/> otherwise.</summary>
    public ushort ActiveTransDomid(uint gref) => _activeTransDomid[gref];
    public uint ActiveTransGref(uint gref) => _activeTransGref[gref];

    /// <summary>A pinned version-2 sub-page grant: copies stay inside [start, start+length); it cannot be mapped.</summary>
    public bool IsSubPage(uint gref) => _activeSubPage[gref];
    public ushort ActiveStart(uint gref) => _activeStart[gref];
    public ushort ActiveLength(uint gref) => _activeLength[gref];

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
