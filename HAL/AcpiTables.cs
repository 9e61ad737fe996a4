namespace Microhv.HAL;

public enum AcpiStatus { Ok, NoRsdp, BadRsdp, BadTable, NoFadt, NoDsdt, NoS5, NoMadt }

/// <summary>
/// Finding a system description table (ACPI 6.x, section 5.2): the RSDP (as GRUB copies it into the
/// multiboot2 information), then the XSDT (revision 2 and later) or the RSDT, then the first entry
/// whose signature matches and whose checksum is right. Every read is bounds- and checksum-checked;
/// the power-off and MADT parsers both start here.
/// </summary>
public static class AcpiTables
{
    public const int SdtHeaderLength = 36;
    private const ulong MaxTableLength = 16 * 1024 * 1024;

    /// <summary>Finds the table named <paramref name="signature"/> from an RSDP at <paramref name="rsdp"/>
    /// (<paramref name="rsdpLength"/> bytes available). Ok, NoRsdp, BadRsdp, or BadTable when no valid table has that name.</summary>
    public static AcpiStatus Find(PhysicalMemory mem, ulong rsdp, ulong rsdpLength, string signature, out ulong table)
    {
        table = 0;
        if (rsdpLength < 20 || !mem.Contains(rsdp, 20)) return AcpiStatus.NoRsdp;
        if (!SignatureIs(mem, rsdp, "RSD PTR ") || Sum(mem, rsdp, 20) != 0) return AcpiStatus.BadRsdp;
        byte revision = mem.Read8(rsdp + 15);
        if (revision >= 2 && rsdpLength >= 36 && mem.Contains(rsdp, 36) && Sum(mem, rsdp, 36) == 0 && mem.Read64(rsdp + 24) != 0)
            table = FindIn(mem, mem.Read64(rsdp + 24), 8, signature);
        if (table == 0) table = FindIn(mem, mem.Read32(rsdp + 16), 4, signature);
        return table != 0 ? AcpiStatus.Ok : AcpiStatus.BadTable;
    }

    private static ulong FindIn(PhysicalMemory mem, ulong rootAddress, int entrySize, string signature)
    {
        if (rootAddress == 0 || !Valid(mem, rootAddress, entrySize == 8 ? "XSDT" : "RSDT")) return 0;
        uint length = mem.Read32(rootAddress + 4);
        for (ulong at = rootAddress + SdtHeaderLength; at + (ulong)entrySize <= rootAddress + length; at += (ulong)entrySize)
        {
            ulong table = entrySize == 8 ? mem.Read64(at) : mem.Read32(at);
            if (table != 0 && Valid(mem, table, signature)) return table;
        }
        return 0;
    }

    /// <summary>True when <paramref name="table"/> holds a whole table named <paramref name="signature"/> with a right checksum.</summary>
    public static bool Valid(PhysicalMemory mem, ulong table, string signature)
    {
        if (!mem.Contains(table, SdtHeaderLength) || !SignatureIs(mem, table, signature)) return false;
        uint length = mem.Read32(table + 4);
        return length >= SdtHeaderLength && length <= MaxTableLength && mem.Contains(table, length) && Sum(mem, table, length) == 0;
    }

    public static bool SignatureIs(PhysicalMemory mem, ulong at, string s)
    {
        for (int i = 0; i < s.Length; i++) if (mem.Read8(at + (ulong)i) != (byte)s[i]) return false;
        return true;
    }

    public static byte Sum(PhysicalMemory mem, ulong at, ulong length)
    {
        byte sum = 0;
        for (ulong i = 0; i < length; i++) sum += mem.Read8(at + i);
        return sum;
    }
}
