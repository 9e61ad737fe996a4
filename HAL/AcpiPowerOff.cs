namespace Microhv.HAL;

/// <summary>
/// Just enough ACPI to power the machine off (ACPI 6.x, sections 5.2 and 7.4.2): the FADT's PM1
/// control blocks and DSDT (found through <see cref="AcpiTables"/>), and the \_S5_ package in the
/// DSDT's AML, read by pattern as small kernels do rather than by running an AML interpreter.
/// </summary>
public struct AcpiPowerOff
{
    public uint Pm1aControlBlock, Pm1bControlBlock;   // I/O ports
    public ushort SlpTypA, SlpTypB;
    public uint SmiCommandPort;
    public byte AcpiEnable;

    public const ushort SlpEn = 1 << 13, SciEn = 1;
    public const int SdtHeaderLength = AcpiTables.SdtHeaderLength;

    /// <summary>Finds FADT and \_S5_ from an RSDP at <paramref name="rsdp"/> (<paramref name="rsdpLength"/> bytes available).</summary>
    public static AcpiStatus Find(PhysicalMemory mem, ulong rsdp, ulong rsdpLength, out AcpiPowerOff result)
    {
        result = default;
        AcpiStatus found = AcpiTables.Find(mem, rsdp, rsdpLength, "FACP", out ulong fadt);
        if (found != AcpiStatus.Ok) return found == AcpiStatus.BadTable ? AcpiStatus.NoFadt : found;

        uint fadtLength = mem.Read32(fadt + 4);
        if (fadtLength < 72) return AcpiStatus.BadTable;
        result.SmiCommandPort = mem.Read32(fadt + 48);
        result.AcpiEnable = mem.Read8(fadt + 52);
        result.Pm1aControlBlock = mem.Read32(fadt + 64);
        result.Pm1bControlBlock = mem.Read32(fadt + 68);
        ulong dsdt = fadtLength >= 148 && mem.Read64(fadt + 140) != 0 ? mem.Read64(fadt + 140) : mem.Read32(fadt + 40);
        if (dsdt == 0 || !AcpiTables.Valid(mem, dsdt, "DSDT")) return AcpiStatus.NoDsdt;
        if (result.Pm1aControlBlock == 0) return AcpiStatus.BadTable;
        return FindS5(mem, dsdt + SdtHeaderLength, mem.Read32(dsdt + 4) - SdtHeaderLength, ref result) ? AcpiStatus.Ok : AcpiStatus.NoS5;
    }

    /// <summary>The value to write to PM1x_CNT to enter S5.</summary>
    public ushort ControlValue(bool b) => (ushort)(((b ? SlpTypB : SlpTypA) & 7) << 10 | SlpEn);

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
}
