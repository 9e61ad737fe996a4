using System;
using System.Linq;
using Microhv.Hypervisor;
using Xunit;
using static Microhv.Tests.Hypervisor.AbiRom.AbiRomImageTests;

namespace Microhv.Tests.Hypervisor.AbiRom;

/// <summary>
/// Runs ROM entries in the RomCpu interpreter, as a guest at the documented address would after init,
/// and checks what they do to vcpu_info, the data page and the registers, and which hypercalls they
/// make with which arguments. Expected numbers are Xen's (xen.h, sched.h, physdev.h) and the spec's.
/// </summary>
public class AbiRomCallTests
{
    private const ulong RomBase = 0xFFFF_FFFF_FFC0_0000;
    private const ulong VcpuInfo = 0xFFFF_C900_0000_0040;    // shared_info + 64: vcpu_info[1], say
    private const ulong StackTop = 0xFFFF_C800_0001_0000;
    private const ulong Cr3 = 0x0012_3000;
    private readonly RomCpu _cpu = new(Rom, RomBase);
    private ulong Data => RomBase + U32(32);

    public AbiRomCallTests()
    {
        _cpu.R[RomCpu.RSP] = StackTop;
        _cpu.R[RomCpu.RDI] = VcpuInfo;
        _cpu.R[RomCpu.RSI] = Cr3;
        _cpu.Call(RomBase + U32(36));                       // init
        Assert.Equal(0UL, _cpu.R[RomCpu.RAX]);
    }

    private ulong Call(int number, ulong rdi = 0, ulong rsi = 0, ulong rdx = 0)
    {
        _cpu.R[RomCpu.RDI] = rdi; _cpu.R[RomCpu.RSI] = rsi; _cpu.R[RomCpu.RDX] = rdx;
        _cpu.Call(RomBase + EntryOf(number));
        return _cpu.R[RomCpu.RAX];
    }

    private byte Mask => _cpu.Read8(VcpuInfo + 1);

    [Fact]
    public void InitRecordsVcpuInfoAndCr3()
    {
        Assert.Equal(VcpuInfo, _cpu.Read(Data + 0, 8));
        Assert.Equal(Cr3, Call(21));                         // GetCR3
        Assert.Empty(_cpu.Hypercalls);
    }

    [Fact]
    public void DisableAndEnableToggleTheMaskWithoutHypercallsWhenNothingIsPending()
    {
        Call(30);
        Assert.Equal(1, Mask);
        Assert.Equal(0UL, Call(31));                         // GetInterruptMask: IF clear
        Call(29);
        Assert.Equal(0, Mask);
        Assert.Equal(0x200UL, Call(31));                     // IF set
        Assert.Empty(_cpu.Hypercalls);
    }

    [Fact]
    public void EnableWithAnEventPendingForcesDeliveryWithXenVersion()
    {
        Call(30);
        _cpu.Write(VcpuInfo + 0, 1, 1);                     // evtchn_upcall_pending
        Call(29);
        Assert.Equal(0, Mask);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(17UL, h.Nr);                            // __HYPERVISOR_xen_version
        Assert.Equal(0UL, h.Rdi);                            // XENVER_version
    }

    [Fact]
    public void SetInterruptMaskFollowsTheIfBit()
    {
        Call(32, 0);
        Assert.Equal(1, Mask);
        Call(32, 0x246);
        Assert.Equal(0, Mask);
    }

    [Fact]
    public void Cr2LivesInVcpuInfo()
    {
        _cpu.Write(VcpuInfo + 16, 8, 0xDEAD_F000);          // vcpu_info.arch.cr2
        Assert.Equal(0xDEAD_F000UL, Call(20));
        Call(16, 0x1234);
        Assert.Equal(0x1234UL, _cpu.Read(VcpuInfo + 16, 8));
        Assert.Empty(_cpu.Hypercalls);
    }

    [Fact]
    public void FlushTlbIsMmuextOpTlbFlushLocal()
    {
        Call(47, 1);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(26UL, h.Nr);                            // __HYPERVISOR_mmuext_op
        Assert.Equal(6UL, h.RdiQword(0) & 0xFFFF_FFFF);      // MMUEXT_TLB_FLUSH_LOCAL
        Assert.Equal(1UL, h.Rsi);                            // one op
        Assert.Equal(0UL, h.Rdx);                            // no success count
        Assert.Equal(0x7FF0UL, h.R10);                       // DOMID_SELF
    }

    [Fact]
    public void InvalPageIsInvlpgLocalWithTheLinearAddress()
    {
        Call(46, 0xFFFF_8880_0012_3000);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(26UL, h.Nr);
        Assert.Equal(7UL, h.RdiQword(0) & 0xFFFF_FFFF);      // MMUEXT_INVLPG_LOCAL
        Assert.Equal(0xFFFF_8880_0012_3000UL, h.RdiQword(8));
    }

    [Fact]
    public void SetCr3IsNewBaseptrWithTheFrameNumber()
    {
        Call(17, 0x0045_6000);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(26UL, h.Nr);
        Assert.Equal(5UL, h.RdiQword(0) & 0xFFFF_FFFF);      // MMUEXT_NEW_BASEPTR
        Assert.Equal(0x456UL, h.RdiQword(8));                // mfn
        Assert.Equal(0x0045_6000UL, Call(21));
    }

    [Fact]
    public void FailedSetCr3KeepsTheOldShadow()
    {
        _cpu.NextResult = -22;
        Assert.Equal(unchecked((ulong)-22L), Call(17, 0x0045_6000));
        Assert.Equal(Cr3, Call(21));
    }

    [Theory]
    [InlineData(1u, 0UL)]     // PAGE_PT → MMUEXT_PIN_L1_TABLE
    [InlineData(2u, 1UL)]     // PAGE_PD → PIN_L2
    [InlineData(4u, 2UL)]     // PAGE_PDP → PIN_L3
    [InlineData(8u, 3UL)]     // PAGE_PML4 → PIN_L4
    public void AllocatePagePinsAtTheLevelTheFlagsName(uint flags, ulong cmd)
    {
        Assert.Equal(0UL, Call(44, 0x777, flags));
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(26UL, h.Nr);
        Assert.Equal(cmd, h.RdiQword(0) & 0xFFFF_FFFF);
        Assert.Equal(0x777UL, h.RdiQword(8));
    }

    [Fact]
    public void AllocatePageWithoutALevelIsEinvalAndMakesNoHypercall()
    {
        Assert.Equal(unchecked((ulong)-22L), Call(44, 0x777, 0));
        Assert.Empty(_cpu.Hypercalls);
    }

    [Fact]
    public void ReleasePageUnpins()
    {
        Call(45, 0x888, 1);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(4UL, h.RdiQword(0) & 0xFFFF_FFFF);      // MMUEXT_UNPIN_TABLE
        Assert.Equal(0x888UL, h.RdiQword(8));
    }

    [Theory]
    [InlineData(38, 0UL)]     // SetPxE: MMU_NORMAL_PT_UPDATE
    [InlineData(80, 0UL)]     // SetPTE
    [InlineData(40, 2UL)]     // UpdatePxE: MMU_PT_UPDATE_PRESERVE_AD
    [InlineData(87, 2UL)]     // UpdatePML4E
    public void PxeOutsideLazyModeIsOneMmuUpdate(int call, ulong command)
    {
        Call(call, 0x0050_1008, 0x0000_0000_0060_0067);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(1UL, h.Nr);                             // __HYPERVISOR_mmu_update
        Assert.Equal(1UL, h.Rsi);
        Assert.Equal(0UL, h.Rdx);
        Assert.Equal(0x7FF0UL, h.R10);
        Assert.Equal(0x0050_1008UL | command, h.RdiQword(0));
        Assert.Equal(0x0060_0067UL, h.RdiQword(8));
    }

    [Fact]
    public void LazyMmuModeQueuesAndLeavingItFlushesInOneMmuUpdate()
    {
        Assert.Equal(0UL, Call(73, 2));                      // SetLazyMode(MMU)
        Call(38, 0x1000, 0xA1);
        Call(40, 0x2008, 0xB2);
        Call(82, 0x3010, 0xC3);
        Assert.Empty(_cpu.Hypercalls);
        Assert.Equal(3UL, _cpu.Read(Data + 0x0C, 4));        // queue_count
        Assert.Equal(0x2008UL | 2, _cpu.Read(Data + 0x80 + 16, 8));

        Assert.Equal(0UL, Call(73, 0));
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(1UL, h.Nr);
        Assert.Equal(3UL, h.Rsi);
        Assert.Equal(Data + 0x80, h.Rdi);
        Assert.Equal(0x7FF0UL, h.R10);
        Assert.Equal(new ulong[] { 0x1000, 0xA1, 0x2008 | 2, 0xB2, 0x3010, 0xC3 },
            Enumerable.Range(0, 6).Select(i => h.RdiQword(i * 8)));
        Assert.Equal(0UL, _cpu.Read(Data + 0x0C, 4));
    }

    [Fact]
    public void AFullQueueIsFlushedBeforeTheNextRequest()
    {
        Call(73, 2);
        for (int i = 0; i < 129; i++) Call(38, 0x1000 + (ulong)i * 8, (ulong)i);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(128UL, h.Rsi);
        Assert.Equal(127UL, h.RdiQword(127 * 16 + 8));
        Assert.Equal(1UL, _cpu.Read(Data + 0x0C, 4));
        Assert.Equal(0x1000UL + 128 * 8, _cpu.Read(Data + 0x80, 8));
    }

    [Fact]
    public void TlbOperationsFlushTheQueueFirst()
    {
        Call(73, 2);
        Call(38, 0x1000, 0xA1);
        Call(47, 1);
        Assert.Equal(new ulong[] { 1, 26 }, _cpu.Hypercalls.Select(h => h.Nr));
        Assert.Equal(0UL, _cpu.Read(Data + 0x0C, 4));
    }

    [Fact]
    public void CpuLazyModeDoesNotQueuePageTableWrites()
    {
        Call(73, 1);
        Call(38, 0x1000, 0xA1);
        Assert.Single(_cpu.Hypercalls);
        Assert.Equal(unchecked((ulong)-22L), Call(73, 4));  // unknown mode bit
    }

    [Fact]
    public void GetRelocReturnsTheEntryAndTypeOfEveryCall()
    {
        foreach (var t in Table())
        {
            _cpu.R[RomCpu.RDI] = (ulong)t.Number;
            _cpu.Call(RomBase + U32(40));
            Assert.Equal(RomBase + t.Offset, _cpu.R[RomCpu.RAX]);
            Assert.Equal((ulong)t.Reloc, _cpu.R[RomCpu.RDX]);
        }
        _cpu.R[RomCpu.RDI] = 26;                             // RDPMC: not provided → keep native
        _cpu.Call(RomBase + U32(40));
        Assert.Equal(0UL, _cpu.R[RomCpu.RAX]);
        Assert.Equal(0UL, _cpu.R[RomCpu.RDX]);
    }

    [Fact]
    public void EveryCallPreservesAllRegistersButRaxRcxR11()
    {
        foreach (var t in Table().Where(t => t.Number != 33))   // IRET does not return
        {
            var cpu = new RomCpu(Rom, RomBase);
            cpu.R[RomCpu.RSP] = StackTop;
            cpu.R[RomCpu.RDI] = VcpuInfo;
            cpu.Call(RomBase + U32(36));
            for (int r = 0; r < 16; r++) if (r != RomCpu.RSP) cpu.R[r] = 0x1111_0000_0000_0000UL * (ulong)(r + 1) + 0x40_0000;
            cpu.R[RomCpu.RDI] = 0xFFFF_C900_0000_1000;          // a pointer-sized first argument
            cpu.R[RomCpu.RSI] = t.Number == 44 ? 8UL : 0x0000_0000_0000_3000;
            cpu.R[RomCpu.RDX] = 0xFFFF_C900_0000_2000;          // CPUID's output buffer
            var before = (ulong[])cpu.R.Clone();
            cpu.Call(RomBase + t.Offset);
            Assert.Equal(StackTop, cpu.R[RomCpu.RSP]);
            for (int r = 0; r < 16; r++)
            {
                if ((t.Clobbers & (1u << r)) != 0) continue;
                Assert.True(before[r] == cpu.R[r], $"call {t.Number} changed register {r}");
            }
        }
    }

    [Fact]
    public void IretPushesXensFrameAndEntersTheIretHypercall()
    {
        _cpu.R[RomCpu.RSP] = StackTop - 40;                  // a native iretq frame: rip, cs, rflags, rsp, ss
        _cpu.R[RomCpu.RAX] = 0xAA; _cpu.R[RomCpu.RCX] = 0xCC; _cpu.R[RomCpu.R11] = 0x11;
        _cpu.StopAtSyscall = true;
        _cpu.Rip = RomBase + EntryOf(33);
        while (_cpu.Step()) { }
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(23UL, h.Nr);                            // __HYPERVISOR_iret
        // struct iret_context: rax, r11, rcx, flags, then the frame.
        Assert.Equal(StackTop - 40 - 32, h.Rsp);
        Assert.Equal(new ulong[] { 0xAA, 0x11, 0xCC, 0 }, Enumerable.Range(0, 4).Select(i => _cpu.Read(h.Rsp + (ulong)i * 8, 8)));
    }

    [Fact]
    public void HaltBlocksAndShutdownAndRebootGiveTheirReasons()
    {
        Call(35);
        Call(37);
        Call(36);
        var h = _cpu.Hypercalls;
        Assert.All(h, x => Assert.Equal(29UL, x.Nr));        // __HYPERVISOR_sched_op
        Assert.Equal(1UL, h[0].Rdi);                         // SCHEDOP_block
        Assert.Equal(2UL, h[1].Rdi);                         // SCHEDOP_shutdown
        Assert.Equal(0u, BitConverter.ToUInt32(h[1].RsiMemory, 0));   // SHUTDOWN_poweroff
        Assert.Equal(2UL, h[2].Rdi);
        Assert.Equal(1u, BitConverter.ToUInt32(h[2].RsiMemory, 0));   // SHUTDOWN_reboot
    }

    [Fact]
    public void WrmsrOfSegmentBasesUsesSetSegmentBase()
    {
        Call(1, 0xC000_0100, 0x7000);                        // MSR_FS_BASE
        Call(1, 0xC000_0101, 0x8000);                        // MSR_GS_BASE (kernel's)
        Call(1, 0xC000_0102, 0x9000);                        // MSR_KERNEL_GS_BASE (user's while in kernel)
        Assert.Equal(new ulong[] { 25, 25, 25 }, _cpu.Hypercalls.Select(h => h.Nr));
        Assert.Equal(new ulong[] { 0, 2, 1 }, _cpu.Hypercalls.Select(h => h.Rdi));   // SEGBASE_FS, _GS_KERNEL, _GS_USER
        Assert.Equal(new ulong[] { 0x7000, 0x8000, 0x9000 }, _cpu.Hypercalls.Select(h => h.Rsi));
        Call(1, 0x1B, 0x1122_3344_5566_7788);                // other MSRs: native, emulated from #GP
        Assert.Equal((0x1Bu, 0x1122_3344_5566_7788UL), Assert.Single(_cpu.Wrmsrs));
        _cpu.RdmsrValue = 0xAABB_CCDD_0011_2233;
        Assert.Equal(0xAABB_CCDD_0011_2233UL, Call(2, 0x1B));
    }

    [Fact]
    public void CpuidUsesForcedEmulationAndFillsTheBuffer()
    {
        const ulong buffer = 0xFFFF_C900_0000_3000;
        Call(0, 7, 0, buffer);
        Assert.Equal(1, _cpu.ForcedCpuids);
        Assert.Equal(new ulong[] { 7 ^ 0xA, 7 ^ 0xB, 7 ^ 0xC, 7 ^ 0xD }, Enumerable.Range(0, 4).Select(i => _cpu.Read(buffer + (ulong)i * 4, 4)));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    [InlineData(-2)]
    public void GetTimeScalesTheTscAsVcpuTimeInfoSays(int shift)
    {
        const ulong t = VcpuInfo + 32;                        // vcpu_info.time
        _cpu.Write(t + 0, 4, 6);                              // version (even: stable)
        _cpu.Write(t + 8, 8, 0x1_0000_0000);                  // tsc_timestamp
        _cpu.Write(t + 16, 8, 5_000_000_000);                 // system_time
        _cpu.Write(t + 24, 4, 0x8000_0000);                   // tsc_to_system_mul = 0.5 in 32.32
        _cpu.Write(t + 28, 1, (byte)shift);
        _cpu.Tsc = 0x1_0000_0000 + 1_000_000;
        ulong delta = shift >= 0 ? 1_000_000UL << shift : 1_000_000UL >> -shift;
        Assert.Equal(5_000_000_000 + delta / 2, Call(98));
        Assert.Empty(_cpu.Hypercalls);
    }

    [Fact]
    public void ConsoleWriteTimerAndKernelStackUseTheirHypercalls()
    {
        Call(96, 0xFFFF_C900_0000_4000, 12);
        Call(97, 123_456_789);
        Call(14, 0xFFFF_C900_0000_8000);
        var h = _cpu.Hypercalls;
        Assert.Equal(18UL, h[0].Nr);                          // console_io(CONSOLEIO_write, count, buffer)
        Assert.Equal((0UL, 12UL, 0xFFFF_C900_0000_4000UL), (h[0].Rdi, h[0].Rsi, h[0].Rdx));
        Assert.Equal(15UL, h[1].Nr);                          // set_timer_op(timeout)
        Assert.Equal(123_456_789UL, h[1].Rdi);
        Assert.Equal(3UL, h[2].Nr);                           // stack_switch(FLAT_KERNEL_SS, sp)
        Assert.Equal((0xE02BUL, 0xFFFF_C900_0000_8000UL), (h[2].Rdi, h[2].Rsi));
    }

    [Fact]
    public void WriteIdtEntryPassesOneTrapInfoAndATerminator()
    {
        const ulong ti = 0xFFFF_C900_0000_5000;
        _cpu.Write(ti, 8, 0x0000_E033_0003_000EUL);            // vector 14, flags 3, cs 0xe033
        _cpu.Write(ti + 8, 8, 0xFFFF_FFFF_8100_0000);
        Call(13, ti);
        var h = Assert.Single(_cpu.Hypercalls);
        Assert.Equal(0UL, h.Nr);                              // set_trap_table
        Assert.Equal(0x0000_E033_0003_000EUL, h.RdiQword(0));
        Assert.Equal(0xFFFF_FFFF_8100_0000UL, h.RdiQword(8));
        Assert.Equal(0UL, h.RdiQword(24));                    // address 0 ends the table
    }

    [Fact]
    public void SetGdtIsRememberedForGetGdtOnlyWhenItSucceeds()
    {
        const ulong outBuf = 0xFFFF_C900_0000_6000;
        Call(3, 0xFFFF_C900_0000_7000, 256);
        Assert.Equal(2UL, _cpu.Hypercalls[0].Nr);              // set_gdt(frame_list, entries)
        Call(7, outBuf);
        Assert.Equal((0xFFFF_C900_0000_7000UL, 256UL), (_cpu.Read(outBuf, 8), _cpu.Read(outBuf + 8, 8)));
        _cpu.NextResult = -22;
        Call(3, 0x1234, 1);
        Call(7, outBuf);
        Assert.Equal(0xFFFF_C900_0000_7000UL, _cpu.Read(outBuf, 8));
    }

    [Fact]
    public void Cr0TsGoesToFpuTaskswitch()
    {
        Call(15, 0x8005_003B);                                // TS set
        Call(28);                                             // CLTS
        Assert.Equal(new ulong[] { 5, 5 }, _cpu.Hypercalls.Select(h => h.Nr));
        Assert.Equal(new ulong[] { 1, 0 }, _cpu.Hypercalls.Select(h => h.Rdi));
        Assert.Equal(0x8005_0033UL, Call(19));
    }
}
