namespace Microhv.HAL;

/// <summary>One processor of the MADT: a Processor Local APIC (type 0) or Local x2APIC (type 9) entry.</summary>
public struct MadtProcessor
{
    public uint ApicId;
    public uint AcpiUid;
    /// <summary>Flags bit 0: usable now.</summary>
    public bool Enabled;
    /// <summary>Flags bit 1 (ACPI 6.3): not enabled now, but the OS may bring it online later.</summary>
    public bool OnlineCapable;
    public bool X2Apic;
}

/// <summary>An I/O APIC entry (type 1): its id, its register window, and the first GSI its inputs carry.</summary>
public struct MadtIoApic
{
    public byte Id;
    public uint Address;
    public uint GsiBase;
}

/// <summary>An Interrupt Source Override (type 2): ISA IRQ <see cref="SourceIrq"/> arrives on <see cref="Gsi"/>.</summary>
public struct MadtInterruptOverride
{
    public byte Bus;
    public byte SourceIrq;
    public uint Gsi;
    /// <summary>MPS INTI flags: bits 0-1 polarity, bits 2-3 trigger mode.</summary>
    public ushort Flags;

    public const int Conforming = 0, ActiveHigh = 1, ActiveLow = 3;
    public const int Edge = 1, Level = 3;
    public int Polarity => Flags & 3;
    public int TriggerMode => (Flags >> 2) & 3;
}

/// <summary>A Local APIC NMI (type 4) or Local x2APIC NMI (type 10) entry: which LINT pin carries NMI.</summary>
public struct MadtLocalApicNmi
{
    /// <summary>The processor's ACPI UID; <see cref="AllProcessors"/> for every processor.</summary>
    public uint AcpiUid;
    public ushort Flags;
    public byte Lint;

    public const uint AllProcessors = 0xFFFFFFFF;
}

/// <summary>
/// The Multiple APIC Description Table (ACPI 6.x, section 5.2.12, signature "APIC"): the processors,
/// I/O APICs, interrupt source overrides and local APIC NMI pins the firmware describes, and the
/// local APIC's address (with the 64-bit override, type 5). Allocate once with the capacities, then
/// <see cref="Parse"/>; entries past a capacity are counted in <see cref="Dropped"/>, entry types
/// not read here are skipped by their length, and an entry whose length is too short for its type
/// or runs past the table makes the whole table malformed (<see cref="AcpiStatus.BadTable"/>).
/// </summary>
public sealed class AcpiMadt
{
    public const int TypeLocalApic = 0, TypeIoApic = 1, TypeInterruptOverride = 2, TypeLocalApicNmi = 4,
                     TypeLocalApicAddressOverride = 5, TypeLocalX2Apic = 9, TypeLocalX2ApicNmi = 10;
    private const int EntriesOffset = AcpiTables.SdtHeaderLength + 8;

    public readonly MadtProcessor[] Processors;
    public readonly MadtIoApic[] IoApics;
    public readonly MadtInterruptOverride[] Overrides;
    public readonly MadtLocalApicNmi[] Nmis;
    public int ProcessorCount, IoApicCount, OverrideCount, NmiCount;
    /// <summary>Entries that did not fit the capacities.</summary>
    public int Dropped;

    /// <summary>Physical address of the local APIC registers (the type-5 override when present).</summary>
    public ulong LocalApicAddress;
    /// <summary>Flags bit 0: the machine also has dual 8259 PICs, which the OS masks when it uses the APICs.</summary>
    public bool PcatCompatible;

    public AcpiMadt() : this(256, 16, 32, 16) { }

    public AcpiMadt(int processors, int ioApics, int overrides, int nmis)
    {
        Processors = new MadtProcessor[processors];
        IoApics = new MadtIoApic[ioApics];
        Overrides = new MadtInterruptOverride[overrides];
        Nmis = new MadtLocalApicNmi[nmis];
    }

    /// <summary>Finds the MADT from the RSDP and parses it: Ok, NoRsdp, BadRsdp, NoMadt (absent or bad checksum) or BadTable.</summary>
    public AcpiStatus Find(PhysicalMemory mem, ulong rsdp, ulong rsdpLength)
    {
        AcpiStatus found = AcpiTables.Find(mem, rsdp, rsdpLength, "APIC", out ulong table);
        if (found != AcpiStatus.Ok) return found == AcpiStatus.BadTable ? AcpiStatus.NoMadt : found;
        return Parse(mem, table);
    }

    /// <summary>Parses the MADT at <paramref name="table"/> (signature, length and checksum are checked again).</summary>
    public AcpiStatus Parse(PhysicalMemory mem, ulong table)
    {
        ProcessorCount = IoApicCount = OverrideCount = NmiCount = Dropped = 0;
        LocalApicAddress = 0;
        PcatCompatible = false;
        if (!AcpiTables.Valid(mem, table, "APIC")) return AcpiStatus.NoMadt;
        ulong end = table + mem.Read32(table + 4);
        if (end < table + EntriesOffset) return AcpiStatus.BadTable;
        LocalApicAddress = mem.Read32(table + AcpiTables.SdtHeaderLength);
        PcatCompatible = (mem.Read32(table + AcpiTables.SdtHeaderLength + 4) & 1) != 0;

        for (ulong at = table + EntriesOffset; at < end;)
        {
            if (at + 2 > end) return AcpiStatus.BadTable;
            byte type = mem.Read8(at), length = mem.Read8(at + 1);
            if (length < 2 || at + length > end || length < MinimumLength(type)) return AcpiStatus.BadTable;
            Read(mem, at, type);
            at += length;
        }
        return AcpiStatus.Ok;
    }

    private static int MinimumLength(byte type)
    {
        switch (type)
        {
            case TypeLocalApic: return 8;
            case TypeIoApic: return 12;
            case TypeInterruptOverride: return 10;
            case TypeLocalApicNmi: return 6;
            case TypeLocalApicAddressOverride: return 12;
            case TypeLocalX2Apic: return 16;
            case TypeLocalX2ApicNmi: return 12;
            default: return 2;
        }
    }

    private void Read(PhysicalMemory mem, ulong at, byte type)
    {
        switch (type)
        {
            case TypeLocalApic:
                AddProcessor(mem.Read8(at + 3), mem.Read8(at + 2), mem.Read32(at + 4), false);
                break;
            case TypeLocalX2Apic:
                AddProcessor(mem.Read32(at + 4), mem.Read32(at + 12), mem.Read32(at + 8), true);
                break;
            case TypeIoApic:
                if (IoApicCount == IoApics.Length) { Dropped++; break; }
                IoApics[IoApicCount].Id = mem.Read8(at + 2);
                IoApics[IoApicCount].Address = mem.Read32(at + 4);
                IoApics[IoApicCount].GsiBase = mem.Read32(at + 8);
                IoApicCount++;
                break;
            case TypeInterruptOverride:
                if (OverrideCount == Overrides.Length) { Dropped++; break; }
                Overrides[OverrideCount].Bus = mem.Read8(at + 2);
                Overrides[OverrideCount].SourceIrq = mem.Read8(at + 3);
                Overrides[OverrideCount].Gsi = mem.Read32(at + 4);
                Overrides[OverrideCount].Flags = mem.Read16(at + 8);
                OverrideCount++;
                break;
            case TypeLocalApicNmi:
                byte uid = mem.Read8(at + 2);
                AddNmi(uid == 0xFF ? MadtLocalApicNmi.AllProcessors : uid, mem.Read16(at + 3), mem.Read8(at + 5));
                break;
            case TypeLocalX2ApicNmi:
                AddNmi(mem.Read32(at + 4), mem.Read16(at + 2), mem.Read8(at + 8));
                break;
            case TypeLocalApicAddressOverride:
                LocalApicAddress = mem.Read64(at + 4);
                break;
        }
    }

    private void AddProcessor(uint apicId, uint uid, uint flags, bool x2apic)
    {
        if (ProcessorCount == Processors.Length) { Dropped++; return; }
        Processors[ProcessorCount].ApicId = apicId;
        Processors[ProcessorCount].AcpiUid = uid;
        Processors[ProcessorCount].Enabled = (flags & 1) != 0;
        Processors[ProcessorCount].OnlineCapable = (flags & 2) != 0;
        Processors[ProcessorCount].X2Apic = x2apic;
        ProcessorCount++;
    }

    private void AddNmi(uint uid, ushort flags, byte lint)
    {
        if (NmiCount == Nmis.Length) { Dropped++; return; }
        Nmis[NmiCount].AcpiUid = uid;
        Nmis[NmiCount].Flags = flags;
        Nmis[NmiCount].Lint = lint;
        NmiCount++;
    }

    /// <summary>Processors usable now (enabled).</summary>
    public int EnabledProcessorCount
    {
        get
        {
            int n = 0;
            for (int i = 0; i < ProcessorCount; i++) if (Processors[i].Enabled) n++;
            return n;
        }
    }

    /// <summary>The GSI ISA IRQ <paramref name="irq"/> arrives on, and its INTI flags (identity and 0 without an override).</summary>
    public uint IsaIrqToGsi(byte irq, out ushort flags)
    {
        for (int i = 0; i < OverrideCount; i++)
        {
            if (Overrides[i].Bus == 0 && Overrides[i].SourceIrq == irq) { flags = Overrides[i].Flags; return Overrides[i].Gsi; }
        }
        flags = 0;
        return irq;
    }
}
