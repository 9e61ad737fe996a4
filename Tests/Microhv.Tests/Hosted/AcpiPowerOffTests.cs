using System;
using System.Text;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>ACPI power-off discovery over synthetic firmware tables laid out as the ACPI spec
/// (sections 5.2.5 RSDP, 5.2.7 RSDT, 5.2.8 XSDT, 5.2.9 FADT, 7.4.2 \_S5) defines them.</summary>
public class AcpiPowerOffTests
{
    private const ulong Rsdp = 0x1000, Rsdt = 0x2000, Xsdt = 0x2800, Fadt = 0x3000, Dsdt = 0x4000;

    private static void Put(SimulatedMemory m, ulong at, string ascii)
    {
        var b = Encoding.ASCII.GetBytes(ascii);
        for (int i = 0; i < b.Length; i++) m.Write8(at + (ulong)i, b[i]);
    }

    private static void FixChecksum(SimulatedMemory m, ulong at, ulong length, ulong checksumOffset)
    {
        m.Write8(at + checksumOffset, 0);
        byte sum = 0;
        for (ulong i = 0; i < length; i++) sum += m.Read8(at + i);
        m.Write8(at + checksumOffset, (byte)(0x100 - sum));
    }

    private static void Header(SimulatedMemory m, ulong at, string signature, uint length)
    {
        Put(m, at, signature);
        m.Write32(at + 4, length);
        m.Write8(at + 8, 1);
    }

    /// <summary>RSDP v0 → RSDT → FADT (PM1a 0x604, PM1b 0, SMI 0xB2/0xF1) → DSDT whose AML is <paramref name="aml"/>.</summary>
    private static SimulatedMemory Machine(byte[] aml, bool xsdt = false)
    {
        var m = new SimulatedMemory(0, 0x8000);
        Put(m, Rsdp, "RSD PTR ");
        m.Write8(Rsdp + 15, (byte)(xsdt ? 2 : 0));
        m.Write32(Rsdp + 16, xsdt ? 0u : (uint)Rsdt);
        if (xsdt) { m.Write32(Rsdp + 20, 36); m.Write64(Rsdp + 24, Xsdt); }
        FixChecksum(m, Rsdp, 20, 8);                      // the v1 checksum covers the first 20 bytes,
        if (xsdt) FixChecksum(m, Rsdp, 36, 32);           // the extended one all 36, itself included

        Header(m, Rsdt, "RSDT", 36 + 4);
        m.Write32(Rsdt + 36, (uint)Fadt);
        FixChecksum(m, Rsdt, 40, 9);
        Header(m, Xsdt, "XSDT", 36 + 8);
        m.Write64(Xsdt + 36, Fadt);
        FixChecksum(m, Xsdt, 44, 9);

        Header(m, Fadt, "FACP", 116);
        m.Write32(Fadt + 40, (uint)Dsdt);
        m.Write32(Fadt + 48, 0xB2);
        m.Write8(Fadt + 52, 0xF1);
        m.Write32(Fadt + 64, 0x604);
        FixChecksum(m, Fadt, 116, 9);

        uint length = (uint)(36 + aml.Length);
        Header(m, Dsdt, "DSDT", length);
        for (int i = 0; i < aml.Length; i++) m.Write8(Dsdt + 36 + (ulong)i, aml[i]);
        FixChecksum(m, Dsdt, length, 9);
        return m;
    }

    // Name (_S5_, Package (0x04) { 0x05, 0x05, Zero, Zero }) preceded by unrelated AML.
    private static readonly byte[] S5Bytes = { 0x10, 0x05, 0x5F, 0x53, 0x42, 0x5F, 0x00, 0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00 };
    // Name (\_S5_, Package (0x04) { Zero, Zero, Zero, Zero }) — the form QEMU's DSDT uses, with Zero ops.
    private static readonly byte[] S5Zero = { 0x08, 0x5C, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00 };

    [Fact]
    public void FindsPm1aAndSlpTypFromBytePrefixedPackage()
    {
        var m = Machine(S5Bytes);
        Assert.Equal(AcpiStatus.Ok, AcpiPowerOff.Find(m, Rsdp, 20, out var p));
        Assert.Equal(0x604u, p.Pm1aControlBlock);
        Assert.Equal(0u, p.Pm1bControlBlock);
        Assert.Equal(5, p.SlpTypA);
        Assert.Equal(5, p.SlpTypB);
        Assert.Equal(0xB2u, p.SmiCommandPort);
        Assert.Equal(0xF1, p.AcpiEnable);
        Assert.Equal((ushort)((5 << 10) | (1 << 13)), p.ControlValue(false));   // SLP_TYP in bits 10-12, SLP_EN bit 13
    }

    [Fact]
    public void ReadsZeroOpsAndRootPrefixedNameThroughTheXsdt()
    {
        var m = Machine(S5Zero, xsdt: true);
        Assert.Equal(AcpiStatus.Ok, AcpiPowerOff.Find(m, Rsdp, 36, out var p));
        Assert.Equal(0, p.SlpTypA);
        Assert.Equal((ushort)(1 << 13), p.ControlValue(false));
    }

    [Fact]
    public void RejectsABadRsdpChecksum()
    {
        var m = Machine(S5Bytes);
        m.Write8(Rsdp + 9, (byte)(m.Read8(Rsdp + 9) + 1));
        Assert.Equal(AcpiStatus.BadRsdp, AcpiPowerOff.Find(m, Rsdp, 20, out _));
    }

    [Fact]
    public void ReportsAMissingS5AndIgnoresAnS5ThatIsNotAName()
    {
        var notName = (byte[])S5Bytes.Clone();
        notName[7] = 0x70;                       // StoreOp instead of NameOp
        Assert.Equal(AcpiStatus.NoS5, AcpiPowerOff.Find(Machine(notName), Rsdp, 20, out _));
        Assert.Equal(AcpiStatus.NoS5, AcpiPowerOff.Find(Machine(new byte[] { 0x10, 0x05, 0x00 }), Rsdp, 20, out _));
    }

    [Fact]
    public void RejectsATableWithABadChecksumOrALengthPastMemory()
    {
        var m = Machine(S5Bytes);
        m.Write8(Fadt + 20, (byte)(m.Read8(Fadt + 20) ^ 0xFF));
        Assert.Equal(AcpiStatus.NoFadt, AcpiPowerOff.Find(m, Rsdp, 20, out _));

        var m2 = Machine(S5Bytes);
        m2.Write32(Dsdt + 4, 0x10000);           // runs past the end of memory: never read
        Assert.Equal(AcpiStatus.NoDsdt, AcpiPowerOff.Find(m2, Rsdp, 20, out _));
        Assert.Empty(m2.Faults);
    }
}
