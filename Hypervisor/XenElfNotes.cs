using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>A string-valued note: where its bytes lie in the image and how many there are before the
/// first NUL (guests may omit the NUL, e.g. Linux's FEATURES uses .ascii, so the length is bounded by descsz).</summary>
public struct XenElfNoteString
{
    public ulong Address;
    public uint Length;
    public bool Present;

    public bool StartsWith(PhysicalMemory memory, string prefix)
    {
        if (!Present || Length < (uint)prefix.Length) return false;
        for (int i = 0; i < prefix.Length; i++) if (memory.Read8(Address + (ulong)i) != (byte)prefix[i]) return false;
        return true;
    }

    public bool Is(PhysicalMemory memory, string value) => Length == (uint)value.Length && StartsWith(memory, value);

    public bool Contains(PhysicalMemory memory, string value)
    {
        if (!Present || Length < (uint)value.Length) return false;
        for (uint start = 0; start + (uint)value.Length <= Length; start++)
        {
            int i = 0;
            while (i < value.Length && memory.Read8(Address + start + (ulong)i) == (byte)value[i]) i++;
            if (i == value.Length) return true;
        }
        return false;
    }
}

/// <summary>
/// The Xen ELF notes of a PV kernel (libelf's elf_dom_parms): read from PT_NOTE segments, or from
/// SHT_NOTE sections when no segment holds a Xen note, as Xen's elf_xen_parse does. Numeric notes are
/// 1, 2, 4 or 8 bytes; addresses not given are <see cref="Unset"/>. Notes with other names (a later
/// Microhv note for the ABI ROM, GNU build-id, Linux notes) are skipped here.
/// </summary>
public struct XenElfNotes
{
    public const ulong Unset = 0xFFFF_FFFF_FFFF_FFFF;
    /// <summary>Xen's ELF_MAX_TOTAL_NOTE_COUNT: bounds the work a hostile image can cause.</summary>
    public const int MaxTotalNotes = 65536;

    public int Count;
    public ulong Entry, HypercallPage, VirtBase, PaddrOffset, HvStartLow, InitP2m, Phys32Entry;
    public bool ModStartPfn, SuspendCancel, L1MfnValid, BsdSymtab, HasSupportedFeaturesNote;
    public XenElfNoteString XenVersion, GuestOs, GuestVersion, Loader, PaeMode, FeaturesString;
    /// <summary>XENFEAT_* bits the kernel supports (FEATURES names and SUPPORTED_FEATURES) and requires ('!' names).</summary>
    public uint FeaturesSupported, FeaturesRequired;
    /// <summary>PAE_MODE "yes" or "...bimodal...": Xen then appends 'p' to the initial domain's start_info magic.</summary>
    public bool Pae;

    /// <summary>Parses the notes. Ok even with no Xen notes (Count = 0); BadNotes when FEATURES requires a
    /// feature name Xen does not know (Xen refuses such an image).</summary>
    public static DomainBuildStatus Parse(in Elf64Image image, out XenElfNotes notes)
    {
        notes = default;
        notes.Entry = notes.HypercallPage = notes.VirtBase = notes.PaddrOffset = Unset;
        notes.HvStartLow = notes.InitP2m = notes.Phys32Entry = Unset;
        int total = 0;
        for (int i = 0; i < image.ProgramHeaderCount; i++)
        {
            if (image.GetProgramHeader(i, out Elf64ProgramHeader ph) != Elf64Status.Ok) continue;
            // Some binutils leave p_offset 0 in note segments; Xen skips those.
            if (ph.Type != Elf64ProgramHeader.PT_NOTE || ph.Offset == 0) continue;
            if (image.GetNotes(ph, out Elf64NoteIterator it) != Elf64Status.Ok) continue;
            if (!notes.ParseRange(image.Memory, ref it, ref total)) return DomainBuildStatus.BadNotes;
        }
        if (notes.Count == 0)
        {
            for (int i = 1; i < image.SectionHeaderCount; i++)
            {
                if (image.GetSectionHeader(i, out Elf64SectionHeader sh) != Elf64Status.Ok) continue;
                if (sh.Type != Elf64SectionHeader.SHT_NOTE) continue;
                var it = new Elf64NoteIterator(image.Memory, image.Address + sh.Offset, sh.SectionSize, sh.AddressAlign == 8 ? 8u : 4u);
                if (!notes.ParseRange(image.Memory, ref it, ref total)) return DomainBuildStatus.BadNotes;
            }
        }
        return DomainBuildStatus.Ok;
    }

    private bool ParseRange(PhysicalMemory memory, ref Elf64NoteIterator it, ref int total)
    {
        while (total < MaxTotalNotes && it.Next(out Elf64Note note) == Elf64Status.Ok)
        {
            total++;
            if (!note.NameIs(memory, ElfNote.Name)) continue;
            if (!ParseNote(memory, note)) return false;
            Count++;
        }
        return true;
    }

    private bool ParseNote(PhysicalMemory memory, in Elf64Note note)
    {
        switch (note.Type)
        {
            case ElfNote.XEN_ELFNOTE_ENTRY: Entry = Numeric(memory, note); break;
            case ElfNote.XEN_ELFNOTE_HYPERCALL_PAGE: HypercallPage = Numeric(memory, note); break;
            case ElfNote.XEN_ELFNOTE_VIRT_BASE: VirtBase = Numeric(memory, note); break;
            case ElfNote.XEN_ELFNOTE_PADDR_OFFSET: PaddrOffset = Numeric(memory, note); break;
            case ElfNote.XEN_ELFNOTE_HV_START_LOW: HvStartLow = Numeric(memory, note); break;
            case ElfNote.XEN_ELFNOTE_INIT_P2M: InitP2m = Numeric(memory, note); break;
            case ElfNote.XEN_ELFNOTE_PHYS32_ENTRY: Phys32Entry = Numeric(memory, note); break;
            case ElfNote.XEN_ELFNOTE_MOD_START_PFN: ModStartPfn = Numeric(memory, note) != 0; break;
            case ElfNote.XEN_ELFNOTE_SUSPEND_CANCEL: SuspendCancel = true; break;
            case ElfNote.XEN_ELFNOTE_L1_MFN_VALID: L1MfnValid = true; break;
            case ElfNote.XEN_ELFNOTE_XEN_VERSION: XenVersion = Str(memory, note); break;
            case ElfNote.XEN_ELFNOTE_GUEST_OS: GuestOs = Str(memory, note); break;
            case ElfNote.XEN_ELFNOTE_GUEST_VERSION: GuestVersion = Str(memory, note); break;
            case ElfNote.XEN_ELFNOTE_LOADER: Loader = Str(memory, note); break;
            case ElfNote.XEN_ELFNOTE_BSD_SYMTAB: BsdSymtab = Str(memory, note).Is(memory, "yes"); break;
            case ElfNote.XEN_ELFNOTE_PAE_MODE:
                PaeMode = Str(memory, note);
                Pae = PaeMode.Is(memory, "yes") || PaeMode.Contains(memory, "bimodal");
                break;
            case ElfNote.XEN_ELFNOTE_FEATURES:
                FeaturesString = Str(memory, note);
                return ParseFeatures(memory, FeaturesString);
            case ElfNote.XEN_ELFNOTE_SUPPORTED_FEATURES:
                // An array of 32-bit submaps; Xen knows XENFEAT_NR_SUBMAPS (1) of them.
                HasSupportedFeaturesNote = true;
                if (note.DescriptorSize >= 4) FeaturesSupported |= memory.Read32(note.DescriptorAddress);
                break;
            default: break; // unknown Xen note types are ignored, as Xen does
        }
        return true;
    }

    /// <summary>libelf's elf_note_numeric: 1, 2, 4 or 8 little-endian bytes; any other size reads as 0.</summary>
    private static ulong Numeric(PhysicalMemory memory, in Elf64Note note)
    {
        switch (note.DescriptorSize)
        {
            case 1: return memory.Read8(note.DescriptorAddress);
            case 2: return memory.Read16(note.DescriptorAddress);
            case 4: return memory.Read32(note.DescriptorAddress);
            case 8: return memory.Read64(note.DescriptorAddress);
            default: return 0;
        }
    }

    private static XenElfNoteString Str(PhysicalMemory memory, in Elf64Note note)
    {
        XenElfNoteString s;
        s.Address = note.DescriptorAddress;
        s.Present = true;
        uint n = 0;
        while (n < note.DescriptorSize && memory.Read8(note.DescriptorAddress + n) != 0) n++;
        s.Length = n;
        return s;
    }

    /// <summary>The FEATURES names Xen's libelf knows, indexed by XENFEAT_* number (null = no name).</summary>
    private static string FeatureName(int bit)
    {
        switch (bit)
        {
            case Features.XENFEAT_writable_page_tables: return "writable_page_tables";
            case Features.XENFEAT_writable_descriptor_tables: return "writable_descriptor_tables";
            case Features.XENFEAT_auto_translated_physmap: return "auto_translated_physmap";
            case Features.XENFEAT_supervisor_mode_kernel: return "supervisor_mode_kernel";
            case Features.XENFEAT_pae_pgdir_above_4gb: return "pae_pgdir_above_4gb";
            case Features.XENFEAT_hvm_callback_vector: return "hvm_callback_vector";
            case Features.XENFEAT_dom0: return "dom0";
            default: return null;
        }
    }

    /// <summary>Splits the '|'-list; a name with '!' is required. An unknown required name fails (Xen refuses
    /// the image), an unknown optional one is ignored.</summary>
    private bool ParseFeatures(PhysicalMemory memory, in XenElfNoteString s)
    {
        uint pos = 0;
        while (pos < s.Length)
        {
            uint end = pos;
            while (end < s.Length && memory.Read8(s.Address + end) != (byte)'|') end++;
            bool required = end > pos && memory.Read8(s.Address + pos) == (byte)'!';
            uint nameStart = required ? pos + 1 : pos;
            int bit = -1;
            for (int b = 0; b < 32 && bit < 0; b++)
            {
                string name = FeatureName(b);
                if (name != null && NameMatches(memory, s.Address + nameStart, end - nameStart, name)) bit = b;
            }
            if (bit >= 0)
            {
                FeaturesSupported |= 1u << bit;
                if (required) FeaturesRequired |= 1u << bit;
            }
            else if (required) return false;
            pos = end + 1;
        }
        return true;
    }

    private static bool NameMatches(PhysicalMemory memory, ulong address, uint length, string name)
    {
        if (length != (uint)name.Length) return false;
        for (int i = 0; i < name.Length; i++) if (memory.Read8(address + (ulong)i) != (byte)name[i]) return false;
        return true;
    }
}
