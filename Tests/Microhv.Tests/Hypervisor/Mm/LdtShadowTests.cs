using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>
/// MMUEXT_SET_LDT and the LDT's pages mapped on demand, as Xen 4.17 does it (pv_map_ldt_shadow_page,
/// pv_destroy_ldt, handle_ldt_mapping_fault): which page the CPU's fault maps, the checks the frame must
/// pass as a descriptor page, what the guest gets when it cannot be mapped, and when the pages go.
/// </summary>
public class LdtShadowTests
{
    private const ulong DataDpl0 = 0x00CF_9200_0000_FFFFUL, DataDpl3 = 0x00CF_F200_0000_FFFFUL;
    private const ulong Tss64 = 0x0000_8900_0000_0067UL;
    private const ulong PfHandler = 0x7000_1000, GpHandler = 0x7000_2000;

    private static LdtArea AddArea(MmGuest g)
    {
        ulong l1 = g.T.NewFrame(FrameTable.OwnerNone);
        var area = new LdtArea(LdtArea.DefaultStart, new[] { l1 * 4096 }, 0);
        g.M.Ldt = area;
        return area;
    }

    /// <summary>A guest with an LDT area, a trap table for #PF and #GP, a kernel stack in its argument page and shared_info for CR2.</summary>
    private static (MmGuest g, LdtArea area) Guest()
    {
        var g = new MmGuest();
        LdtArea area = AddArea(g);
        g.Dom.SharedInfoMfn = g.T.NewFrame(FrameTable.OwnerXen);
        g.V.TrapTable[TrapBounce.VectorPF] = new TrapInfo { Vector = 14, Cs = Xen.FLAT_KERNEL_CS64, Address = PfHandler };
        g.V.TrapTable[TrapBounce.VectorGP] = new TrapInfo { Vector = 13, Cs = Xen.FLAT_KERNEL_CS64, Address = GpHandler };
        return (g, area);
    }

    private static long SetLdt(MmGuest g, ulong linear, ulong entries) => MmuExtOp.One(g.V, g.Dom, Xen.MMUEXT_SET_LDT, linear, entries);

    private static TrapFrame Frame() => new TrapFrame
    {
        Rip = Va(CodeSlot), Cs = Xen.FLAT_KERNEL_CS64, Ss = Xen.FLAT_KERNEL_SS64, Rsp = Va(ArgsSlot) + 0xE00, Rflags = 0x202,
        Vector = 14,
    };

    private static ulong Cr2(MmGuest g) => g.T.Memory.Peek64(g.Dom.SharedInfoMfn * 4096 + SharedInfo.arch_cr2);

    [Fact]
    public void SetLdtLoadsTheNewLdtButMapsNoPageYet()
    {
        var (g, _) = Guest();
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 512));
        Assert.Equal(new[] { g.V }, g.T.Host.LdtLoads);
        Assert.Equal(0UL, LdtShadow.MappedFrame(g.V, 0));
        Assert.Equal(FrameType.None, g.Type(g.Code));
        // The same LDT again changes nothing: no load, no flush.
        int flushes = g.T.Host.TlbFlushes;
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 512));
        Assert.Single(g.T.Host.LdtLoads);
        Assert.Equal(flushes, g.T.Host.TlbFlushes);
    }

    [Fact]
    public void SetLdtRefusesWhatXenRefuses()
    {
        var (g, _) = Guest();
        Assert.Equal(-Errno.EINVAL, SetLdt(g, Va(CodeSlot) + 8, 16));                   // not page-aligned
        Assert.Equal(-Errno.EINVAL, SetLdt(g, Va(CodeSlot), 8193));                      // more than 8192 entries
        Assert.Equal(-Errno.EINVAL, SetLdt(g, Xen.HYPERVISOR_VIRT_START + 0x1000, 1));   // in the hypervisor's hole
        Assert.Equal(-Errno.EINVAL, SetLdt(g, 0x0000_8000_0000_0000, 1));                // not canonical
        Assert.Equal(-Errno.EPERM, MmuExtOp.One(g.V, new MmGuest(g.T, id: 2).Dom, Xen.MMUEXT_SET_LDT, Va(CodeSlot), 1));  // a foreign owner
        Assert.Equal(0, SetLdt(g, 0x0000_8000_0000_0000, 0));                            // no entries: the address is not looked at
        Assert.Equal(0UL, g.V.LdtBase);
        Assert.Empty(g.T.Host.LdtLoads);
    }

    [Fact]
    public void TheCpusFaultMapsTheGuestPageAsAValidatedDescriptorPage()
    {
        var (g, area) = Guest();
        g.Set(g.Code, 1, DataDpl0);
        uint refs = g.RefCount(g.Code);
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 512));
        TrapFrame regs = Frame();
        // A supervisor read (the CPU's implicit access) of descriptor 1 in this vCPU's part of the area.
        Assert.True(LdtShadow.OnPageFault(g.V, ref regs, area.VirtualAddressOf(g.V.LdtSlot) + 8, 0));
        Assert.Equal(Va(CodeSlot), regs.Rip);                        // no bounce: the instruction runs again
        Assert.Equal(g.Code, LdtShadow.MappedFrame(g.V, 0));
        Assert.Equal(FrameType.SegDesc, g.Type(g.Code));
        Assert.Equal(1u, g.TypeCount(g.Code));
        Assert.Equal(refs + 1, g.RefCount(g.Code));
        Assert.Equal(DataDpl3, g.Get(g.Code, 1));                    // checked as a GDT entry is: DPL raised to 3
        ulong entry = g.T.Memory.Peek64(area.EntryAddress(g.V.LdtSlot, 0));
        Assert.Equal(area.EntryFor(g.Code), entry);
        Assert.Equal(0UL, entry & PageTableEntry.User);               // the guest cannot read it there itself
        Assert.NotEqual(0UL, entry & PageTableEntry.Writable);       // the CPU sets the accessed bits
    }

    [Fact]
    public void APageInUseAsWritableIsTheGuestsPageFaultAtItsLdtAddress()
    {
        var (g, area) = Guest();
        Assert.Equal(0, SetLdt(g, Va(1), 16));                       // a data page, mapped writable
        TrapFrame regs = Frame();
        Assert.True(LdtShadow.OnPageFault(g.V, ref regs, area.VirtualAddressOf(g.V.LdtSlot) + 8, 0));
        Assert.Equal(PfHandler, regs.Rip);
        Assert.Equal(Va(1) + 8, Cr2(g));
        Assert.Equal(FrameType.Writable, g.Type(g.Data[0]));
        Assert.Equal(0UL, LdtShadow.MappedFrame(g.V, 0));
    }

    [Fact]
    public void APageWithASystemDescriptorIsRefused()
    {
        var (g, area) = Guest();
        g.Set(g.Code, 4, Tss64);
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 16));
        TrapFrame regs = Frame();
        Assert.True(LdtShadow.OnPageFault(g.V, ref regs, area.VirtualAddressOf(g.V.LdtSlot), 0));
        Assert.Equal(PfHandler, regs.Rip);
        Assert.Equal(Va(CodeSlot), Cr2(g));
        Assert.Equal(0u, g.TypeCount(g.Code));
    }

    [Fact]
    public void AnUnmappedPageOrAnOffsetPastTheLdtIsThePageFaultOfTheGuest()
    {
        var (g, area) = Guest();
        Assert.Equal(0, SetLdt(g, 0x7000_0000, 16));                 // nothing mapped there
        TrapFrame regs = Frame();
        Assert.True(LdtShadow.OnPageFault(g.V, ref regs, area.VirtualAddressOf(g.V.LdtSlot) + 0x10, 0));
        Assert.Equal(PfHandler, regs.Rip);
        Assert.Equal(0x7000_0010UL, Cr2(g));

        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 1));
        Assert.False(LdtShadow.MapPage(g.V, 8));                     // entry 1 of a one-entry LDT
        Assert.True(LdtShadow.MapPage(g.V, 0));
    }

    [Fact]
    public void ANonCanonicalLdtAddressIsGeneralProtectionWithTheSelectorsOffset()
    {
        var (g, area) = Guest();
        Assert.Equal(0, SetLdt(g, 0x0000_7FFF_FFFF_F000, 8192));
        TrapFrame regs = Frame();
        Assert.True(LdtShadow.OnPageFault(g.V, ref regs, area.VirtualAddressOf(g.V.LdtSlot) + 0x1008, 0));
        Assert.Equal(GpHandler, regs.Rip);
        Assert.Equal(0x100CUL, g.T.Memory.Peek64(MachineAddressOfStack(g, regs.Rsp) + 16));   // error code: offset | TI
    }

    private static ulong MachineAddressOfStack(MmGuest g, ulong rsp) => g.Args * 4096 + (rsp - Va(ArgsSlot));

    [Fact]
    public void FaultsThatAreNotTheCpusLdtAccessAreLeftToTheOrdinaryPath()
    {
        var (g, area) = Guest();
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 512));
        TrapFrame regs = Frame();
        ulong mine = area.VirtualAddressOf(g.V.LdtSlot);
        Assert.False(LdtShadow.OnPageFault(g.V, ref regs, mine, 4));                            // the guest's own access (user)
        Assert.False(LdtShadow.OnPageFault(g.V, ref regs, mine + LdtArea.BytesPerVcpu, 0));    // the next vCPU's part
        Assert.False(LdtShadow.OnPageFault(g.V, ref regs, Va(CodeSlot), 0));                   // not the area
        Assert.Equal(0UL, LdtShadow.MappedFrame(g.V, 0));
    }

    /// <summary>Maps descriptor page 0 of the vCPU's LDT (the code page).</summary>
    private static (MmGuest g, LdtArea area, uint refs) Mapped()
    {
        var (g, area) = Guest();
        uint refs = g.RefCount(g.Code);
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 512));
        Assert.True(LdtShadow.MapPage(g.V, 0));
        return (g, area, refs);
    }

    [Fact]
    public void AChangedLdtGivesItsPagesBackAndFlushes()
    {
        var (g, _, refs) = Mapped();
        int flushes = g.T.Host.TlbFlushes;
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 16));
        Assert.Equal(0UL, LdtShadow.MappedFrame(g.V, 0));
        Assert.Equal(0u, g.TypeCount(g.Code));
        Assert.Equal(refs, g.RefCount(g.Code));
        Assert.Equal(flushes + 1, g.T.Host.TlbFlushes);
        Assert.Equal(2, g.T.Host.LdtLoads.Count);
    }

    [Fact]
    public void ANewPageTableBaseGivesThePagesBack()
    {
        var (g, _, refs) = Mapped();
        ulong l4 = g.Spare[0];
        for (int i = 0; i < 512; i++) g.Set(l4, i, g.Get(g.L4, i));
        Assert.Equal(0, MmuExtOp.One(g.V, g.Dom, Xen.MMUEXT_NEW_BASEPTR, l4, 0));
        Assert.Equal(0UL, LdtShadow.MappedFrame(g.V, 0));
        Assert.Equal(refs, g.RefCount(g.Code));
        Assert.Equal(512UL, g.V.LdtEntries);                         // the LDT itself stays, mapped again on demand
    }

    [Fact]
    public void UnmappingItsOwnMappingKeepsTheLdtPageUntilTheLdtChanges()
    {
        var (g, _, refs) = Mapped();
        // As Xen 4.17's put_page_from_l1e: the guest's read-only mapping goes, the LDT's mapping stays.
        Assert.Equal(0, Microhv.Hypervisor.Mm.UpdateVaMapping.Do(g.V, Va(CodeSlot), 0, Xen.UVMF_INVLPG));
        Assert.Equal(g.Code, LdtShadow.MappedFrame(g.V, 0));
        Assert.Equal(1u, g.TypeCount(g.Code));
        Assert.Equal(-Errno.EBUSY, Microhv.Hypervisor.Mm.UpdateVaMapping.Do(g.V, Va(CodeSlot), Pte(g.Code, P | RW | US), Xen.UVMF_INVLPG));
        Assert.Equal(0, SetLdt(g, 0, 0));
        Assert.Equal(refs - 1, g.RefCount(g.Code));                  // only the LDT's reference went; the mapping's went before
        Assert.Equal(0, Microhv.Hypervisor.Mm.UpdateVaMapping.Do(g.V, Va(CodeSlot), Pte(g.Code, P | RW | US), Xen.UVMF_INVLPG));
    }

    [Fact]
    public void WhileMappedTheLdtPageCannotBeMadeWritable()
    {
        var (g, _, _) = Mapped();
        Assert.Equal(-Errno.EBUSY, Microhv.Hypervisor.Mm.UpdateVaMapping.Do(g.V, Va(CodeSlot), Pte(g.Code, P | RW | US), Xen.UVMF_INVLPG));
        Assert.Equal(g.Code, LdtShadow.MappedFrame(g.V, 0));
    }

    [Fact]
    public void ARelinquishedDomainLeavesNoLdtPageMapped()
    {
        var (g, area, _) = Mapped();
        g.Dom.State = DomainState.Shutdown;
        DomainRelinquish.Relinquish(g.Dom);
        Assert.Equal(0UL, g.T.Memory.Peek64(area.EntryAddress(g.V.LdtSlot, 0)));
    }

    [Fact]
    public void AnIretToAnLdtSelectorMapsThePageAndRunsAgain()
    {
        var (g, area) = Guest();
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 512));
        TrapFrame regs = Frame();
        regs.Vector = 14 | TrapFrame.ExitFaultFlag;
        ExitFault.Handle(g.V, ref regs, area.VirtualAddressOf(g.V.LdtSlot) + 8);
        Assert.Equal(Va(CodeSlot), regs.Rip);
        Assert.Equal(g.Code, LdtShadow.MappedFrame(g.V, 0));
        Assert.Equal(DomainState.Running, g.Dom.State);
    }

    [Fact]
    public void TheHypervisorsOwnSelectorLoadMapsThePageOrLeavesItToTheFixup()
    {
        var (g, area) = Guest();
        Assert.Equal(0, SetLdt(g, Va(CodeSlot), 512));
        ulong mine = area.VirtualAddressOf(g.V.LdtSlot);
        Assert.True(LdtShadow.OnHypervisorFault(g.V, mine + 8, 0));
        Assert.Equal(g.Code, LdtShadow.MappedFrame(g.V, 0));
        Assert.False(LdtShadow.OnHypervisorFault(g.V, mine + 0x1000, 0));     // nothing mapped at page 1: the fixup loads null
        Assert.False(LdtShadow.OnHypervisorFault(g.V, mine + LdtArea.BytesPerVcpu, 0));
        Assert.False(LdtShadow.OnHypervisorFault(null, mine, 0));
    }

    [Fact]
    public void EachVcpuObjectHasItsOwnPartOfTheArea()
    {
        var (g, area) = Guest();
        Assert.NotEqual(g.Dom.Vcpus[0].LdtSlot, g.Dom.Vcpus[1].LdtSlot);
        Assert.Equal(area.VirtualAddressOf(g.Dom.Vcpus[0].LdtSlot) + LdtArea.BytesPerVcpu, area.VirtualAddressOf(g.Dom.Vcpus[1].LdtSlot));
        Assert.True(area.Contains(area.VirtualAddressOf(31) + LdtArea.BytesPerVcpu - 1));
        Assert.False(area.Contains(area.VirtualAddressOf(32)));
    }
}
