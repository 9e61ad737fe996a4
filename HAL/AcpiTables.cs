namespace Microhv.HAL;

public enum AcpiStatus { Ok, NoRsdp, BadRsdp, BadTable, NoFadt, NoDsdt, NoS5 }

/// <summary>
/// Just enough ACPI to power the machine off (ACPI 6.x, sections 5.2 and 7.4.2): the RSDP (as
/// GRUB copies it into the multiboot2 information), the RSDT/XSDT, the FADT's PM1 control blocks
/// and DSDT, and the \_S5_ package in the DSDT's AML, read by pattern as small kernels do rather
/// than by running an AML interpreter. Every read is bounds- and checksum-checked.
/// </summary>
public struct AcpiPowerOff
{
    public uint Pm1aControlBlock, Pm1bControlBlock;   // I/O ports
    public ushort SlpTypA, SlpTypB;
    public uint SmiCommandPort;
    public byte AcpiEnable;

    public const ushort SlpEn = 1 << 13, SciEn = 1;
    public const int SdtHeaderLength = 36;
    private const ulong MaxTableLength = 16 * 1024 * 1024;

    /// <summary>Finds FADT and \_S5_ from an RSDP at <paramref name="rsdp"/> (<paramref name="rsdpLength"/> bytes available).</summary>
    public static AcpiStatus Find(PhysicalMemory mem, ulong rsdp, ulong rsdpLength, out AcpiPowerOff result)
    {
        result = default;
        if (rsdpLength < 20 || !mem.Contains(rsdp, 20)) return AcpiStatus.NoRsdp;
        if (!SignatureIs(mem, rsdp, "RSD PTR ") || Sum(mem, rsdp, 20) != 0) return AcpiStatus.BadRsdp;
        byte revision = mem.Read8(rsdp + 15);
        ulong fadt = 0;
        if (revision >= 2 && rsdpLength >= 36 && mem.Contains(rsdp, 36) && Sum(mem, rsdp, 36) == 0 && mem.Read64(rsdp + 24) != 0)
            fadt = FindTable(mem, mem.Read64(rsdp + 24), 8, "FACP");
        if (fadt == 0) fadt = FindTable(mem, mem.Read32(rsdp + 16), 4, "FACP");
        if (fadt == 0) return AcpiStatus.NoFadt;

        uint fadtLength = mem.Read32(fadt + 4);
        if (fadtLength < 72) return AcpiStatus.BadTable;
        result.SmiCommandPort = mem.Read32(fadt + 48);
        result.AcpiEnable = mem.Read8(fadt + 52);
        result.Pm1aControlBlock = mem.Read32(fadt + 64);
        result.Pm1bControlBlock = mem.Read32(fadt + 68);
        ulong dsdt = fadtLength >= 148 && mem.Read64(fadt + 140) != 0 ? mem.Read64(fadt + 140) : mem.Read32(fadt + 40);
        if (dsdt == 0 || !ValidTable(mem, dsdt, "DSDT")) return AcpiStatus.NoDsdt;
        if (result.Pm1aControlBlock == 0) return AcpiStatus.BadTable;
        return FindS5(mem, dsdt + SdtHeaderLength, mem.Read32(dsdt + 4) - SdtHeaderLength, ref result) ? AcpiStatus.Ok : AcpiStatus.NoS5;
    }

    /// <summary>The value to write to PM1x_CNT to enter S5.</summary>
    public ushort ControlValue(bool b) => (ushort)(((b ? SlpTypB : SlpTypA) & 7) << 10 | SlpEn);

    private static ulong FindTable(PhysicalMemory mem, ulong rootAddress, int entrySize, string signature)
    {
        if (rootAddress == 0 || !ValidTable(mem, rootAddress, entrySize == 8 ? "XSDT" : "RSDT")) return 0;
        uint length = mem.Read32(rootAddress + 4);
        for (ulong at = rootAddress + SdtHeaderLength; at + (ulong)entrySize <= rootAddress + length; at += (ulong)entrySize)
        {
            ulong table = entrySize == 8 ? mem.Read64(at) : mem.Read32(at);
            if (table != 0 && ValidTable(mem, table, signature)) return table;
        }
        return 0;
    }

    private static bool ValidTable(PhysicalMemory mem, ulong table, string signature)
    {
        if (!mem.Contains(table, SdtHeaderLength) || !SignatureIs(mem, table, signature)) return false;
        uint length = mem.Read32(table + 4);
        return length >= SdtHeaderLength && length <= MaxTableLength && mem.Contains(table, length) && Sum(mem, table, length) == 0;
    }

    /// <summary>Finds "_S5_" defined as Name(_S5_, Package(){ a, b, ...}) and reads SLP_TYPa/b.</summary>
    public static bool FindS5(PhysicalMemory mem, ulong aml, ulong length, ref AcpiPowerOff result)
    {
        for (ulong i = 1; i + 8 <= length; i++)
        {
            ulong p = aml + i;
            if (mem.Read8(p) != (byte)'_' || mem.Read8(p + 1) != (byte)'S' || mem.Read8(p + 2) != (byte)'5' || mem.Read8(p + 3) != (byte)'_') continue;
            byte before = mem.Read8(p - 1);
            bool named = before == 0x08 || (before == 0x5C && i >= 2 && mem.Read8(p - 2) == 0x08);   // NameOp, optional root '\'
            if (!named || mem.Read8(p + 4) != 0x12) continue;                                       // PackageOp
            ulong q = p + 5;
            int pkgLengthBytes = ((mem.Read8(q) >> 6) & 3) + 1;
            q += (ulong)pkgLengthBytes + 1;                                                         // PkgLength, NumElements
            if (q + 4 > aml + length) return false;
            if (!ReadSmallInteger(mem, ref q, aml + length, out result.SlpTypA)) return false;
            if (!ReadSmallInteger(mem, ref q, aml + length, out result.SlpTypB)) result.SlpTypB = result.SlpTypA;
            return true;
        }
        return false;
    }

    // ZeroOp 0x00, OneOp 0x01, BytePrefix 0x0A nn, WordPrefix 0x0B nnnn.
    private static bool ReadSmallInteger(PhysicalMemory mem, ref ulong q, ulong end, out ushort value)
    {
        value = 0;
        if (q >= end) return false;
        byte op = mem.Read8(q);
        if (op == 0x00 || op == 0x01) { value = op; q += 1; return true; }
        if (op == 0x0A && q + 2 <= end) { value = mem.Read8(q + 1); q += 2; return true; }
        if (op == 0x0B && q + 3 <= end) { value = mem.Read16(q + 1); q += 3; return true; }
        return false;
    }

    private static bool SignatureIs(PhysicalMemory mem, ulong at, string s)
    {
        for (int i = 0; i < s.Length; i++) if (mem.Read8(at + (ulong)i) != (byte)s[i]) return false;
        return true;
    }

    private static byte Sum(PhysicalMemory mem, ulong at, ulong length)
    {
        byte sum = 0;
        for (ulong i = 0; i < length; i++) sum += mem.Read8(at + i);
        return sum;
    }
}
