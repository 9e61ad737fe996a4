using System.Collections.Generic;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Traps;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor;

/// <summary>
/// The CPU as the kernel's fault-fixup copies see it, over simulated memory: CR3 is <see cref="Cr3"/>,
/// each access is translated the way the MMU does for ring 0 with CR0.WP set (present at every level,
/// writable at every level for a store; User does not matter in ring 0), and a fault makes the access
/// return false, as the fixup does. It records every access so a test sees which path GuestMemory took.
/// </summary>
public sealed class SimulatedCpuAccess : LiveGuestMemory
{
    private readonly PhysicalMemory _mem;
    public ulong Cr3;
    public readonly List<ulong> Accesses = new();
    public int Faults;

    public SimulatedCpuAccess(PhysicalMemory mem) { _mem = mem; }
    public override ulong LoadedRoot => Cr3;

    private bool Walk(ulong va, bool write, out ulong pa)
    {
        pa = 0;
        if (!PageTableEntry.IsCanonical(va)) throw new System.InvalidOperationException("#GP: GuestMemory let a non-canonical address through");
        if (va >= 0xFFFF_8000_0000_0000UL && va < 0xFFFF_8800_0000_0000UL) throw new System.InvalidOperationException("GuestMemory let an address in the hypervisor's hole through");
        if (!PageTable.Translate(_mem, Cr3, va, out pa, out ulong flags, out _)) return false;
        return !write || (flags & PageTableEntry.Writable) != 0;
    }

    private bool Bytes(ulong va, int length, bool write, System.Action<ulong, int> each)
    {
        Accesses.Add(va);
        var pas = new ulong[length];
        for (int i = 0; i < length; i++)
            if (!Walk(va + (ulong)i, write, out pas[i])) { Faults++; return false; }
        for (int i = 0; i < length; i++) each(pas[i], i);
        return true;
    }

    private bool ReadN(ulong va, int n, out ulong value)
    {
        ulong v = 0;
        bool ok = Bytes(va, n, false, (pa, i) => v |= (ulong)_mem.Read8(pa) << (8 * i));
        value = ok ? v : 0;
        return ok;
    }

    private bool WriteN(ulong va, int n, ulong value) => Bytes(va, n, true, (pa, i) => _mem.Write8(pa, (byte)(value >> (8 * i))));

    public override bool ReadU8(ulong va, out byte value) { bool ok = ReadN(va, 1, out ulong x); value = (byte)x; return ok; }
    public override bool ReadU16(ulong va, out ushort value) { bool ok = ReadN(va, 2, out ulong x); value = (ushort)x; return ok; }
    public override bool ReadU32(ulong va, out uint value) { bool ok = ReadN(va, 4, out ulong x); value = (uint)x; return ok; }
    public override bool ReadU64(ulong va, out ulong value) => ReadN(va, 8, out value);
    public override bool WriteU8(ulong va, byte value) => WriteN(va, 1, value);
    public override bool WriteU32(ulong va, uint value) => WriteN(va, 4, value);
    public override bool WriteU64(ulong va, ulong value) => WriteN(va, 8, value);
    public override bool Read(ulong va, byte[] buffer, int offset, int length) => Bytes(va, length, false, (pa, i) => buffer[offset + i] = _mem.Read8(pa));
    public override bool Write(ulong va, byte[] buffer, int offset, int length) => Bytes(va, length, true, (pa, i) => _mem.Write8(pa, buffer[offset + i]));
    public override bool ReadU64s(ulong va, ref ulong first, int count)
    {
        var b = new byte[count * 8];
        if (!Read(va, b, 0, b.Length)) return false;
        for (int i = 0; i < count; i++) System.Runtime.CompilerServices.Unsafe.Add(ref first, i) = System.BitConverter.ToUInt64(b, i * 8);
        return true;
    }
    public override bool WriteU64s(ulong va, ref ulong first, int count)
    {
        var b = new byte[count * 8];
        for (int i = 0; i < count; i++) System.BitConverter.GetBytes(System.Runtime.CompilerServices.Unsafe.Add(ref first, i)).CopyTo(b, i * 8);
        return Write(va, b, 0, b.Length);
    }
}

/// <summary>GuestMemory's choice between the CPU's live translation and the software walk, and the checks it keeps.</summary>
public class LiveGuestMemoryTests
{
    private static (MmGuest g, SimulatedCpuAccess cpu) Running()
    {
        var g = new MmGuest();
        var cpu = new SimulatedCpuAccess(g.M.Memory) { Cr3 = g.V.GuestTable };
        g.M.Live = cpu;
        return (g, cpu);
    }

    [Fact]
    public void WhileTheVcpusRootIsLoadedAccessesGoThroughTheCpu()
    {
        var (g, cpu) = Running();
        g.T.Memory.Poke64(g.Data[0] * 4096 + 16, 0x1234_5678_9ABC_DEF0UL);
        Assert.True(GuestMemory.ReadU64(g.V, Va(1) + 16, out ulong x));
        Assert.Equal(0x1234_5678_9ABC_DEF0UL, x);
        Assert.True(GuestMemory.WriteU32(g.V, Va(2) + 4, 0xCAFEu));
        Assert.Equal(0xCAFEUL, g.T.Memory.Peek64(g.Data[1] * 4096 + 4) & 0xFFFF_FFFF);
        Assert.Equal(new[] { Va(1) + 16, Va(2) + 4 }, cpu.Accesses);
    }

    [Fact]
    public void ACopyAcrossAPageBoundaryIsOneAccess()
    {
        var (g, cpu) = Running();
        var src = new byte[32];
        for (int i = 0; i < src.Length; i++) src[i] = (byte)(i + 1);
        Assert.True(GuestMemory.CopyToGuest(g.V, Va(2) - 16, src, 0, 32));
        var back = new byte[32];
        Assert.True(GuestMemory.CopyFromGuest(g.V, Va(2) - 16, back, 0, 32));
        Assert.Equal(src, back);
        Assert.Equal(2, cpu.Accesses.Count);
    }

    [Fact]
    public void ARootTheCpuHasNotLoadedIsWalkedInSoftware()
    {
        var (g, cpu) = Running();
        cpu.Cr3 = g.Spare[0] * 4096;                 // another address space is loaded (another vCPU's, or the idle one)
        g.T.Memory.Poke64(g.Data[0] * 4096, 77);
        Assert.True(GuestMemory.ReadU64(g.V, Va(1), out ulong x));
        Assert.Equal(77UL, x);
        Assert.False(GuestMemory.WriteU64(g.V, Va(CodeSlot), 1));   // the walk still refuses a read-only page
        Assert.Empty(cpu.Accesses);
    }

    [Fact]
    public void ANewBaseptrNotYetInCr3IsWalkedInSoftware()
    {
        var (g, cpu) = Running();
        g.V.GuestTable = g.Spare[1] * 4096;          // new_baseptr recorded, CR3 still the old L4
        Assert.False(GuestMemory.ReadU64(g.V, Va(1), out _));   // the new (empty) root maps nothing
        Assert.Empty(cpu.Accesses);
    }

    [Theory]
    [InlineData(0x0000_8000_0000_0000UL, 8UL)]      // non-canonical
    [InlineData(0x0000_7FFF_FFFF_FFFCUL, 8UL)]      // runs into the non-canonical gap
    [InlineData(0xFFFF_8000_0000_0000UL, 8UL)]      // the hypervisor's hole (the M2P's start)
    [InlineData(0xFFFF_82D0_8000_0000UL, 8UL)]      // Microhv's own image
    [InlineData(0xFFFF_87FF_FFFF_FFFCUL, 8UL)]      // ends above the hole, starts in it
    [InlineData(0xFFFF_FFFF_FFFF_FFFCUL, 8UL)]      // wraps around
    public void RangesOutsideTheGuestsHalvesFailBeforeTheCpuTouchesThem(ulong va, ulong length)
    {
        var (g, cpu) = Running();
        Assert.False(GuestMemory.AccessOk(va, length));
        Assert.False(GuestMemory.ReadU64(g.V, va, out _));
        Assert.False(GuestMemory.WriteU64(g.V, va, 1));
        Assert.False(GuestMemory.CopyFromGuest(g.V, va, new byte[(int)length], 0, (int)length));
        Assert.Empty(cpu.Accesses);
    }

    [Fact]
    public void TheHalvesThemselvesAreAccessible()
    {
        Assert.True(GuestMemory.AccessOk(0, 8));
        Assert.True(GuestMemory.AccessOk(0x0000_7FFF_FFFF_FFF8UL, 8));
        Assert.True(GuestMemory.AccessOk(0xFFFF_8800_0000_0000UL, 8));
        Assert.True(GuestMemory.AccessOk(0xFFFF_FFFF_FFFF_FFF8UL, 8));
    }

    [Fact]
    public void FaultsOfTheCpuAreFailuresNotCrashes()
    {
        var (g, cpu) = Running();
        Assert.False(GuestMemory.WriteU64(g.V, Va(CodeSlot), 1));        // read-only: CR0.WP makes it fault
        Assert.False(GuestMemory.WriteU64(g.V, Va(L1Slot), 1));          // its own page table, mapped read-only
        Assert.False(GuestMemory.ReadU64(g.V, Va(30), out _));           // unmapped
        Assert.Equal(3, cpu.Faults);
        Assert.True(g.Dom.IsAlive);
    }

    [Fact]
    public void FetchStopsAtThePageThatFaults()
    {
        var (g, cpu) = Running();
        var buf = new byte[15];
        Assert.Equal(15, GuestMemory.Fetch(g.V, Va(4) - 3, buf, 15));      // across two mapped pages
        ulong lastMapped = Va(L4Slot + 1) - 4;                            // the next page (slot 14) is unmapped
        Assert.Equal(4, GuestMemory.Fetch(g.V, lastMapped, buf, 15));
        Assert.Equal(0, GuestMemory.Fetch(g.V, Va(30), buf, 15));
    }

    [Fact]
    public void ABounceFrameAndItsIretGoThroughTheCpu()
    {
        var (g, cpu) = Running();
        g.V.TrapTable[3].Address = 0xFFFF_FFFF_8000_1000UL;
        var regs = new TrapFrame { Rip = 0x40_5000, Cs = 0xE033, Rflags = 0x202, Rsp = Va(3) + 0x800, Ss = 0xE02B, Rcx = 11, R11 = 22, Rax = 5 };
        Assert.True(TrapBounce.Bounce(g.V, ref regs, 3, false, 0, 0));
        Assert.Equal(Va(3) + 0x800 - 7 * 8, regs.Rsp);
        Assert.Single(cpu.Accesses);
        Assert.Equal(11UL, g.T.Memory.Peek64(g.Data[2] * 4096 + 0x800 - 7 * 8));
        Assert.Equal(0x40_5000UL, g.T.Memory.Peek64(g.Data[2] * 4096 + 0x800 - 5 * 8));

        // A bounce whose stack page is read-only crashes the domain, as on Xen.
        var bad = new TrapFrame { Rip = 0x40_5000, Cs = 0xE033, Rflags = 0x202, Rsp = Va(CodeSlot) + 0x800, Ss = 0xE02B };
        Assert.False(TrapBounce.Bounce(g.V, ref bad, 3, false, 0, 0));
        Assert.False(g.Dom.IsAlive);
    }
}
