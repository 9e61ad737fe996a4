using System;
using System.Collections.Generic;
using System.Text;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>MADT parsing (ACPI 6.x section 5.2.12) over synthetic tables reached through an RSDP and
/// RSDT, as <see cref="AcpiTables"/> finds them for the kernel.</summary>
public class AcpiMadtTests
{
    private const ulong Rsdp = 0x1000, Rsdt = 0x2000, Madt = 0x3000;

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

    // Entry builders, byte by byte as the spec lays them out.
    private static byte[] LocalApic(byte uid, byte apicId, uint flags) =>
        new byte[] { 0, 8, uid, apicId, (byte)flags, (byte)(flags >> 8), (byte)(flags >> 16), (byte)(flags >> 24) };
    private static byte[] IoApic(byte id, uint address, uint gsiBase)
    {
        var e = new byte[12]; e[0] = 1; e[1] = 12; e[2] = id;
        BitConverter.GetBytes(address).CopyTo(e, 4); BitConverter.GetBytes(gsiBase).CopyTo(e, 8);
        return e;
    }
    private static byte[] Override(byte irq, uint gsi, ushort flags)
    {
        var e = new byte[10]; e[0] = 2; e[1] = 10; e[2] = 0; e[3] = irq;
        BitConverter.GetBytes(gsi).CopyTo(e, 4); BitConverter.GetBytes(flags).CopyTo(e, 8);
        return e;
    }
    private static byte[] Nmi(byte uid, ushort flags, byte lint) => new byte[] { 4, 6, uid, (byte)flags, (byte)(flags >> 8), lint };
    private static byte[] AddressOverride(ulong address)
    {
        var e = new byte[12]; e[0] = 5; e[1] = 12;
        BitConverter.GetBytes(address).CopyTo(e, 4);
        return e;
    }
    private static byte[] X2Apic(uint x2apicId, uint flags, uint uid)
    {
        var e = new byte[16]; e[0] = 9; e[1] = 16;
        BitConverter.GetBytes(x2apicId).CopyTo(e, 4); BitConverter.GetBytes(flags).CopyTo(e, 8); BitConverter.GetBytes(uid).CopyTo(e, 12);
        return e;
    }
    private static byte[] X2ApicNmi(uint uid, ushort flags, byte lint)
    {
        var e = new byte[12]; e[0] = 10; e[1] = 12;
        BitConverter.GetBytes(flags).CopyTo(e, 2); BitConverter.GetBytes(uid).CopyTo(e, 4); e[8] = lint;
        return e;
    }

    /// <summary>RSDP v0 → RSDT → MADT (local APIC at 0xFEE00000, PCAT_COMPAT) holding <paramref name="entries"/>.</summary>
    private static SimulatedMemory Machine(params byte[][] entries)
    {
        var m = new SimulatedMemory(0, 0x8000);
        Put(m, Rsdp, "RSD PTR ");
        m.Write32(Rsdp + 16, (uint)Rsdt);
        FixChecksum(m, Rsdp, 20, 8);
        Put(m, Rsdt, "RSDT");
        m.Write32(Rsdt + 4, 40);
        m.Write32(Rsdt + 36, (uint)Madt);
        FixChecksum(m, Rsdt, 40, 9);

        var body = new List<byte>();
        foreach (var e in entries) body.AddRange(e);
        uint length = (uint)(44 + body.Count);
        Put(m, Madt, "APIC");
        m.Write32(Madt + 4, length);
        m.Write8(Madt + 8, 5);
        m.Write32(Madt + 36, 0xFEE00000);
        m.Write32(Madt + 40, 1);
        for (int i = 0; i < body.Count; i++) m.Write8(Madt + 44 + (ulong)i, body[i]);
        FixChecksum(m, Madt, length, 9);
        return m;
    }

    // QEMU's i440fx machine with four CPUs, as SeaBIOS builds it: 4 local APICs, 1 I/O APIC, 5 overrides, 1 NMI.
    private static SimulatedMemory QemuLike() => Machine(
        LocalApic(0, 0, 1), LocalApic(1, 1, 1), LocalApic(2, 2, 1), LocalApic(3, 3, 1),
        IoApic(0, 0xFEC00000, 0),
        Override(0, 2, 0), Override(5, 5, 0xD), Override(9, 9, 0xD), Override(10, 10, 0xD), Override(11, 11, 0xD),
        Nmi(0xFF, 0, 1));

    [Fact]
    public void ReadsProcessorsIoApicOverridesAndNmis()
    {
        var madt = new AcpiMadt();
        Assert.Equal(AcpiStatus.Ok, madt.Find(QemuLike(), Rsdp, 20));
        Assert.Equal(0xFEE00000UL, madt.LocalApicAddress);
        Assert.True(madt.PcatCompatible);
        Assert.Equal(4, madt.ProcessorCount);
        Assert.Equal(4, madt.EnabledProcessorCount);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal((uint)i, madt.Processors[i].ApicId);
            Assert.Equal((uint)i, madt.Processors[i].AcpiUid);
            Assert.False(madt.Processors[i].X2Apic);
        }
        Assert.Equal(1, madt.IoApicCount);
        Assert.Equal(0, madt.IoApics[0].Id);
        Assert.Equal(0xFEC00000u, madt.IoApics[0].Address);
        Assert.Equal(0u, madt.IoApics[0].GsiBase);
        Assert.Equal(5, madt.OverrideCount);
        Assert.Equal(0, madt.Overrides[0].SourceIrq);
        Assert.Equal(2u, madt.Overrides[0].Gsi);
        Assert.Equal(MadtInterruptOverride.Conforming, madt.Overrides[0].Polarity);
        Assert.Equal(MadtInterruptOverride.ActiveHigh, madt.Overrides[1].Polarity);
        Assert.Equal(MadtInterruptOverride.Level, madt.Overrides[1].TriggerMode);
        Assert.Equal(1, madt.NmiCount);
        Assert.Equal(MadtLocalApicNmi.AllProcessors, madt.Nmis[0].AcpiUid);
        Assert.Equal(1, madt.Nmis[0].Lint);
        Assert.Equal(0, madt.Dropped);

        Assert.Equal(2u, madt.IsaIrqToGsi(0, out ushort f0));
        Assert.Equal(0, f0);
        Assert.Equal(9u, madt.IsaIrqToGsi(9, out ushort f9));
        Assert.Equal(0xD, f9);
        Assert.Equal(4u, madt.IsaIrqToGsi(4, out _));      // no override: identity
    }

    [Fact]
    public void ReadsEnabledAndOnlineCapableFlagsX2ApicEntriesAndTheAddressOverride()
    {
        var m = Machine(LocalApic(0, 0, 1), LocalApic(1, 2, 0), LocalApic(2, 4, 2),
                        X2Apic(0x100, 1, 7), X2ApicNmi(7, 5, 1), AddressOverride(0x1_2345_6000));
        var madt = new AcpiMadt();
        Assert.Equal(AcpiStatus.Ok, madt.Find(m, Rsdp, 20));
        Assert.Equal(4, madt.ProcessorCount);
        Assert.Equal(2, madt.EnabledProcessorCount);
        Assert.False(madt.Processors[1].Enabled);
        Assert.False(madt.Processors[1].OnlineCapable);
        Assert.False(madt.Processors[2].Enabled);
        Assert.True(madt.Processors[2].OnlineCapable);
        Assert.Equal(4u, madt.Processors[2].ApicId);
        Assert.True(madt.Processors[3].X2Apic);
        Assert.Equal(0x100u, madt.Processors[3].ApicId);
        Assert.Equal(7u, madt.Processors[3].AcpiUid);
        Assert.Equal(1, madt.NmiCount);
        Assert.Equal(7u, madt.Nmis[0].AcpiUid);
        Assert.Equal(5, madt.Nmis[0].Flags);
        Assert.Equal(1, madt.Nmis[0].Lint);
        Assert.Equal(0x1_2345_6000UL, madt.LocalApicAddress);
    }

    [Fact]
    public void SkipsUnknownEntryTypesByTheirLength()
    {
        var gicc = new byte[80]; gicc[0] = 0x0B; gicc[1] = 80;           // an ARM GIC CPU interface: not ours
        var future = new byte[] { 0x7F, 5, 0xAA, 0xBB, 0xCC };            // a type no spec has yet
        var madt = new AcpiMadt();
        Assert.Equal(AcpiStatus.Ok, madt.Find(Machine(LocalApic(0, 0, 1), gicc, future, LocalApic(1, 1, 1)), Rsdp, 20));
        Assert.Equal(2, madt.ProcessorCount);
        Assert.Equal(1u, madt.Processors[1].ApicId);
    }

    [Fact]
    public void RefusesEntriesTooShortOrRunningPastTheTable()
    {
        var shortIoApic = IoApic(0, 0xFEC00000, 0); shortIoApic[1] = 8;
        Assert.Equal(AcpiStatus.BadTable, new AcpiMadt().Find(Machine(LocalApic(0, 0, 1), shortIoApic), Rsdp, 20));

        var zeroLength = new byte[] { 0x7F, 0 };                          // would loop forever if taken
        Assert.Equal(AcpiStatus.BadTable, new AcpiMadt().Find(Machine(zeroLength), Rsdp, 20));

        var pastEnd = LocalApic(1, 1, 1); pastEnd[1] = 20;                 // claims 20 bytes, table ends after 8
        Assert.Equal(AcpiStatus.BadTable, new AcpiMadt().Find(Machine(LocalApic(0, 0, 1), pastEnd), Rsdp, 20));

        var halfHeader = new byte[] { 0 };                                // one byte left: not even a header
        Assert.Equal(AcpiStatus.BadTable, new AcpiMadt().Find(Machine(LocalApic(0, 0, 1), halfHeader), Rsdp, 20));
    }

    [Fact]
    public void RefusesATableTruncatedByMemoryOrShorterThanItsFixedPart()
    {
        var m = QemuLike();
        m.Write32(Madt + 4, 0x10000);                                     // runs past the end of memory: never read
        FixChecksum(m, Madt, 44, 9);
        Assert.Equal(AcpiStatus.NoMadt, new AcpiMadt().Find(m, Rsdp, 20));
        Assert.Empty(m.Faults);

        var s = QemuLike();
        s.Write32(Madt + 4, 40);                                          // a header without the local APIC address and flags
        FixChecksum(s, Madt, 40, 9);
        Assert.Equal(AcpiStatus.BadTable, new AcpiMadt().Find(s, Rsdp, 20));
    }

    [Fact]
    public void RefusesABadChecksumAndReportsAMissingTable()
    {
        var m = QemuLike();
        m.Write8(Madt + 50, (byte)(m.Read8(Madt + 50) ^ 0x40));
        Assert.Equal(AcpiStatus.NoMadt, new AcpiMadt().Find(m, Rsdp, 20));

        var n = QemuLike();
        Put(n, Madt, "FACP");                                              // not an MADT any more
        Assert.Equal(AcpiStatus.NoMadt, new AcpiMadt().Find(n, Rsdp, 20));
        Assert.Equal(AcpiStatus.NoRsdp, new AcpiMadt().Find(n, Rsdp, 0));
        n.Write8(Rsdp, (byte)'X');
        Assert.Equal(AcpiStatus.BadRsdp, new AcpiMadt().Find(n, Rsdp, 20));
    }

    // QEMU 7.2's MADT for "-smp 4" on the i440fx machine, as SeaBIOS left it in memory (dumped with the monitor's pmemsave).
    private const string QemuMadtSmp4 =
        "4150494390000000014b424f4348532042585043202020200100000042585043010000000000e0fe01000000" +
        "0008000001000000000801010100000000080202010000000008030301000000010c00000000c0fe00000000" +
        "020a0000020000000000020a0005050000000d00020a0009090000000d00020a000a0a0000000d00020a000b" +
        "0b0000000d000406ff000001";

    [Fact]
    public void ParsesQemusRealTable()
    {
        byte[] bytes = Convert.FromHexString(QemuMadtSmp4);
        var m = new SimulatedMemory(0xFFE1000, 0x1000);
        for (int i = 0; i < bytes.Length; i++) m.Write8(0xFFE1AFFUL + (ulong)i, bytes[i]);
        var madt = new AcpiMadt();
        Assert.Equal(AcpiStatus.Ok, madt.Parse(m, 0xFFE1AFF));
        Assert.Equal(4, madt.EnabledProcessorCount);
        Assert.Equal(3u, madt.Processors[3].ApicId);
        Assert.Equal(1, madt.IoApicCount);
        Assert.Equal(0xFEC00000u, madt.IoApics[0].Address);
        Assert.Equal(5, madt.OverrideCount);
        Assert.Equal(2u, madt.IsaIrqToGsi(0, out _));
        Assert.Equal(MadtInterruptOverride.Level, madt.Overrides[4].TriggerMode);
        Assert.Equal(1, madt.NmiCount);
        Assert.Equal(0xFEE00000UL, madt.LocalApicAddress);
        Assert.Empty(m.Faults);
    }

    [Fact]
    public void CountsEntriesPastItsCapacities()
    {
        var madt = new AcpiMadt(2, 1, 1, 1);
        Assert.Equal(AcpiStatus.Ok, madt.Find(QemuLike(), Rsdp, 20));
        Assert.Equal(2, madt.ProcessorCount);
        Assert.Equal(1, madt.OverrideCount);
        Assert.Equal(2 + 4, madt.Dropped);
    }
}
