using Microhv.HAL;
using Microhv.Hypervisor.Public;
using static Microhv.Hypervisor.Public.AbiRomLayout;

namespace Microhv.Hypervisor;

/// <summary>
/// Microhv's ABI shim ROM (docs/abi-rom.md): VMware VMI's discovery-and-binding model for a 64-bit
/// Xen PV guest. A guest that carries the "Microhv" ELF note gets a read-only, executable copy of
/// AbiRomImage.Bytes at the virtual address it asked for, and one writable data page right after it;
/// the ROM's code runs in the guest's ring 3 and uses the ordinary Xen hypercalls. The layout (header,
/// call numbers, data page) is Public/AbiRomLayout.cs; this file maps the ROM into a domain.
/// </summary>
public static class AbiRom
{
    public static int RomLength => AbiRomImage.Bytes.Length;

    /// <summary>Offset of the data page from the ROM base, as the image's header records it.</summary>
    public static uint DataOffset => Read32(AbiRomImage.Bytes, HdrDataOffset);

    /// <summary>
    /// Gives domain <paramref name="d"/> its copy of the ROM at <paramref name="romVirtualAddress"/>
    /// (0 = DefaultVirtualAddress) and a zeroed data page at <paramref name="dataVirtualAddress"/>
    /// (0 = right after the ROM; any other value must equal that, since the ROM reaches its data
    /// RIP-relative). Maps them in the bootstrap tables d.Vcpu.GuestTable points at: ROM pages
    /// Present|User read-only and executable, the data page Present|User|Writable.
    /// Call it from the domain builder BEFORE PageTypes.AdoptInitialPageTables: the validation pass then
    /// gives the new intermediate tables their L1..L3 types and the data page its Writable type.
    /// The ROM frames are owned by the domain but hold a type reference that is never validated, so
    /// every later get_page_type on them (writable mapping, page-table pin, GDT/LDT) is refused.
    /// Returns 0, -EINVAL (address), -EBUSY (tables already validated), -EEXIST (range mapped),
    /// -ENOMEM.
    /// </summary>
    public static long MapInto(Domain d, ulong romVirtualAddress, ulong dataVirtualAddress)
    {
        Machine m = d.Machine;
        if (romVirtualAddress == 0) romVirtualAddress = DefaultVirtualAddress;
        ulong dataOffset = DataOffset;
        if (dataVirtualAddress == 0) dataVirtualAddress = romVirtualAddress + dataOffset;
        if (!IsAcceptableAddress(romVirtualAddress) || dataVirtualAddress != romVirtualAddress + dataOffset) return -Errno.EINVAL;
        if (dataOffset + Layout.PageSize > WindowSize || (ulong)RomLength > dataOffset) return -Errno.EINVAL;

        ulong l4 = d.Vcpu.GuestTable >> Layout.PageShift;
        if (d.Vcpu.GuestTable == 0 || m.FrameTable.OwnerOf(l4) != d.DomainId) return -Errno.EINVAL;
        if (m.FrameTable.TypeCount(l4) != 0) return -Errno.EBUSY;

        var frames = new OwnedFrameSource(m, d.DomainId);
        var tables = new PageTable(m.Memory, frames, d.Vcpu.GuestTable);
        for (ulong off = 0; off <= dataOffset; off += Layout.PageSize)
        {
            if (tables.Walk(romVirtualAddress + off, out _, out _) == PageWalkResult.Mapped) return -Errno.EEXIST;
        }

        int romPages = RomLength / (int)Layout.PageSize;
        for (int i = 0; i < romPages; i++)
        {
            if (!frames.TryAllocateFrame(out ulong frame)) return -Errno.ENOMEM;
            for (int b = 0; b < (int)Layout.PageSize; b++) m.Memory.Write8(frame + (ulong)b, AbiRomImage.Bytes[i * (int)Layout.PageSize + b]);
            // Held forever and never validated: PageTypes refuses every other type reference on it.
            m.FrameTable.SetType(frame >> Layout.PageShift, FrameType.SegDesc, 1);
            m.FrameTable.SetValidated(frame >> Layout.PageShift, false);
            MapStatus s = tables.Map(romVirtualAddress + (ulong)i * Layout.PageSize, frame, PageTableEntry.User, PageSize.Size4K);
            if (s != MapStatus.Ok) return s == MapStatus.OutOfMemory ? -Errno.ENOMEM : -Errno.EINVAL;
        }

        if (!frames.TryAllocateFrame(out ulong data)) return -Errno.ENOMEM;
        m.Memory.Fill(data, 0, Layout.PageSize);
        MapStatus ds = tables.Map(dataVirtualAddress, data, PageTableEntry.User | PageTableEntry.Writable, PageSize.Size4K);
        if (ds != MapStatus.Ok) return ds == MapStatus.OutOfMemory ? -Errno.ENOMEM : -Errno.EINVAL;
        return 0;
    }

    /// <summary>
    /// Reads the guest's "Microhv" notes from its PT_NOTE segments: true when it asks for the ROM
    /// (NOTE_ABI_ROM present, 8-byte descriptor), with the address it gave (0 = default) and the ABI
    /// version it wants (0.0 when NOTE_ABI_VERSION is absent or malformed).
    /// </summary>
    public static bool FindRequest(in Elf64Image image, out ulong romVirtualAddress, out ushort major, out ushort minor)
    {
        bool requested = false;
        romVirtualAddress = 0;
        major = minor = 0;
        int total = 0;
        for (int i = 0; i < image.ProgramHeaderCount; i++)
        {
            if (image.GetProgramHeader(i, out Elf64ProgramHeader ph) != Elf64Status.Ok) continue;
            if (ph.Type != Elf64ProgramHeader.PT_NOTE || ph.Offset == 0) continue;
            if (image.GetNotes(ph, out Elf64NoteIterator it) != Elf64Status.Ok) continue;
            // Bounded like XenElfNotes: a hostile image cannot make this loop long.
            while (total++ < 65536 && it.Next(out Elf64Note note) == Elf64Status.Ok)
            {
                if (!note.NameIs(image.Memory, NoteName)) continue;
                if (note.Type == NOTE_ABI_ROM && note.DescriptorSize == 8)
                {
                    romVirtualAddress = image.Memory.Read64(note.DescriptorAddress);
                    requested = true;
                }
                else if (note.Type == NOTE_ABI_VERSION && note.DescriptorSize == 4)
                {
                    major = image.Memory.Read16(note.DescriptorAddress);
                    minor = image.Memory.Read16(note.DescriptorAddress + 2);
                }
            }
        }
        return requested;
    }

    /// <summary>The guest's wanted version is served by this ROM: same major, minor not newer than ours.</summary>
    public static bool IsCompatible(ushort major, ushort minor) => major == VersionMajor && minor <= VersionMinor;

    /// <summary>2 MiB aligned, in the upper (guest kernel) half, above Xen's hypervisor hole.</summary>
    public static bool IsAcceptableAddress(ulong va)
        => (va & (WindowSize - 1)) == 0 && va >= Xen.HYPERVISOR_VIRT_END && PageTableEntry.IsCanonical(va);

    private static uint Read32(byte[] b, int o) => (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24));

    /// <summary>Frames from the machine's pool, zeroed and owned by the domain (ROM copies and new tables).</summary>
    private sealed class OwnedFrameSource : FrameSource
    {
        private readonly Machine _machine;
        private readonly ushort _owner;
        public OwnedFrameSource(Machine machine, ushort owner) { _machine = machine; _owner = owner; }

        public override bool TryAllocateFrame(out ulong physicalAddress)
        {
            if (!_machine.Frames.TryAllocateFrame(out physicalAddress)) return false;
            ulong mfn = physicalAddress >> Layout.PageShift;
            if (!_machine.FrameTable.IsValid(mfn)) return false;
            _machine.FrameTable.SetOwner(mfn, _owner);
            _machine.Memory.Fill(physicalAddress, 0, Layout.PageSize);
            return true;
        }
    }
}
