using System;
using System.Text;
using Iced.Intel;
using Microhv.HAL;
using Microhv.Hypervisor;
using Xunit;
using Builder = Microhv.Hypervisor.DomainBuilder;
using N = Microhv.Hypervisor.Public.ElfNote;
using SI = Microhv.Hypervisor.Public.StartInfo;

namespace Microhv.Tests.Hypervisor.DomainBuilder;

/// <summary>
/// The PV domain builder against synthetic Xen kernels. Expected layouts are worked out by hand from
/// Xen's dom0_construct_pv rules (kernel, p2m, start_info, tables, stack, 4 MiB end with 512 KiB slack;
/// the table count solved by Xen's search), never taken from the builder's output.
/// </summary>
public class DomainBuilderTests
{
    private const ulong KernelBase = 0xFFFF_FFFF_8000_0000;
    private const ulong P = PageTableEntry.Present, W = PageTableEntry.Writable, U = PageTableEntry.User,
        A = PageTableEntry.Accessed, D = PageTableEntry.Dirty;

    private static readonly byte[] Text = XenImage.Pattern(0x3000, 1);
    private static readonly byte[] Data = XenImage.Pattern(0x800, 2);

    /// <summary>Case (1): ENTRY, VIRT_BASE, HYPERCALL_PAGE, XEN_VERSION; text at paddr 0x1000, data+bss at 0x4000.</summary>
    private static XenImage Minimal()
    {
        var x = new XenImage { ElfEntry = 0xDEAD };
        x.Note(N.XEN_ELFNOTE_ENTRY, KernelBase + 0x1000)
         .Note(N.XEN_ELFNOTE_VIRT_BASE, KernelBase)
         .Note(N.XEN_ELFNOTE_HYPERCALL_PAGE, KernelBase + 0x2000)
         .Note(N.XEN_ELFNOTE_XEN_VERSION, "xen-3.0");
        x.Load(0x1000, KernelBase + 0x1000, Text, 0x3000);
        x.Load(0x4000, KernelBase + 0x4000, Data, 0x3000, Elf64ProgramHeader.PF_R | Elf64ProgramHeader.PF_W);
        return x;
    }

    /// <summary>Case (2): the notes of Debian's linux-image-6.1 amd64 (arch/x86/xen/xen-head.S), no hypercall page.</summary>
    private static XenImage Debian61()
    {
        var x = new XenImage { ElfEntry = 0x1000000 };
        x.Note(N.XEN_ELFNOTE_GUEST_OS, "linux")
         .Note(N.XEN_ELFNOTE_GUEST_VERSION, "2.6")
         .Note(N.XEN_ELFNOTE_XEN_VERSION, "xen-3.0")
         .Note(N.XEN_ELFNOTE_VIRT_BASE, KernelBase)
         .Note(N.XEN_ELFNOTE_INIT_P2M, 0x80_0000_0000)
         .Note(N.XEN_ELFNOTE_ENTRY, KernelBase + 0x100_2000)
         .Note(N.XEN_ELFNOTE_FEATURES, "!writable_page_tables|pae_pgdir_above_4gb", nul: false)
         .Note(N.XEN_ELFNOTE_PAE_MODE, "yes")
         .RawNote("Xen", N.XEN_ELFNOTE_L1_MFN_VALID, new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 })
         .Note(N.XEN_ELFNOTE_MOD_START_PFN, 1, 4)
         .Note(N.XEN_ELFNOTE_HV_START_LOW, 0xFFFF_8000_0000_0000)
         .Note(N.XEN_ELFNOTE_PADDR_OFFSET, 0)
         .Note(N.XEN_ELFNOTE_SUPPORTED_FEATURES, (1 << 0) | (1 << 11) | (1 << 15), 4)
         .Note(N.XEN_ELFNOTE_LOADER, "generic")
         .Note(N.XEN_ELFNOTE_SUSPEND_CANCEL, 1, 4);
        x.Load(0x100_0000, KernelBase + 0x100_0000, Text, 0x5000);
        return x;
    }

    private static ulong Translate(BuilderMachine bm, Domain d, ulong va, out ulong flags)
    {
        Assert.True(PageTable.Translate(bm.Memory, d.Vcpu.GuestTable, va, out ulong pa, out flags, out PageSize size), $"0x{va:X} unmapped");
        Assert.Equal(PageSize.Size4K, size);
        return pa;
    }

    private static ulong StartInfoAddress(BuilderMachine bm, Domain d) => Translate(bm, d, d.Vcpu.Regs.Rsi, out _);

    private static string Magic(BuilderMachine bm, ulong si)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < 32 && bm.Memory.Bytes[si + (ulong)i] != 0; i++) sb.Append((char)bm.Memory.Bytes[si + (ulong)i]);
        return sb.ToString();
    }

    [Fact]
    public void Minimal_image_gets_Xens_layout_start_info_and_entry_state()
    {
        var bm = new BuilderMachine();
        ulong freeBefore = bm.Frames.FreeFrames;
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, true, out Domain d));

        // kernel [+0x1000,+0x7000); p2m 2048*8 = 16 KiB at +0x7000; start_info +0xB000; tables from +0xC000.
        // Tables: L4, L3, L2 and two L1s for the 4 MiB region = 5; stack +0x11000..+0x12000; end +0x400000.
        Assert.Equal(KernelBase + 0x1000, d.Vcpu.Regs.Rip);
        Assert.Equal(KernelBase + 0xB000, d.Vcpu.Regs.Rsi);
        Assert.Equal(KernelBase + 0x12000, d.Vcpu.Regs.Rsp);
        Assert.Equal(0xE033UL, d.Vcpu.Regs.Cs);
        Assert.Equal(0xE02BUL, d.Vcpu.Regs.Ss);
        Assert.Equal(0x202UL, d.Vcpu.Regs.Rflags);
        Assert.Equal(0UL, d.Vcpu.Regs.Rax | d.Vcpu.Regs.Rbx | d.Vcpu.Regs.Rcx | d.Vcpu.Regs.Rdx | d.Vcpu.Regs.Rdi
            | d.Vcpu.Regs.Rbp | d.Vcpu.Regs.R8 | d.Vcpu.Regs.R9 | d.Vcpu.Regs.R10 | d.Vcpu.Regs.R11 | d.Vcpu.Regs.R12
            | d.Vcpu.Regs.R13 | d.Vcpu.Regs.R14 | d.Vcpu.Regs.R15);
        Assert.True(d.Vcpu.KernelMode);
        Assert.Equal(DomainState.Building, d.State);
        Assert.Same(d, bm.Machine.FindDomain(0));
        Assert.Equal(1, bm.Machine.DomainCount);
        Assert.Equal(2048UL, d.NrPages);
        Assert.Equal(freeBefore - 2049, bm.Frames.FreeFrames); // the pseudo-physical map plus shared_info

        ulong si = StartInfoAddress(bm, d);
        Assert.Equal("xen-3.0-x86_64", Magic(bm, si));
        Assert.Equal(2048UL, bm.Memory.Peek64(si + SI.nr_pages));
        Assert.Equal(d.SharedInfoMfn << 12, bm.Memory.Peek64(si + SI.shared_info));
        Assert.Equal(3u, BitConverter.ToUInt32(bm.Memory.Bytes, (int)si + SI.flags)); // SIF_PRIVILEGED|SIF_INITDOMAIN
        Assert.Equal(KernelBase + 0xC000, bm.Memory.Peek64(si + SI.pt_base));
        Assert.Equal(5UL, bm.Memory.Peek64(si + SI.nr_pt_frames));
        Assert.Equal(KernelBase + 0x7000, bm.Memory.Peek64(si + SI.mfn_list));
        Assert.Equal(0UL, bm.Memory.Peek64(si + SI.mod_start) | bm.Memory.Peek64(si + SI.mod_len));
        Assert.Equal(7UL, bm.Memory.Peek64(si + SI.first_p2m_pfn));
        Assert.Equal(4UL, bm.Memory.Peek64(si + SI.nr_p2m_frames));
        Assert.Equal(0UL, bm.Memory.Peek64(si + SI.console_dom0_info_off)); // info_off and info_size both 0
        Assert.Equal("console=hvc0\0", Encoding.ASCII.GetString(bm.Memory.Bytes, (int)si + SI.cmd_line, 13));
        Assert.Equal(12, d.CommandLineLength);

        // The L4 is the page at pt_base, and its hypervisor slots are the machine's.
        Assert.Equal(d.Vcpu.GuestTable, Translate(bm, d, KernelBase + 0xC000, out _));
        for (int i = 0; i < 16; i++) Assert.Equal(bm.Machine.HypervisorL4Slots[i], bm.Memory.Peek64(d.Vcpu.GuestTable + (ulong)(256 + i) * 8));

        // shared_info: zeroed apart from the masked upcalls; vcpu_info[0] is at its start.
        Assert.Equal(d.SharedInfoMfn << 12, d.Vcpu.VcpuInfoAddress);
        Assert.Equal(1, bm.Memory.Bytes[(d.SharedInfoMfn << 12) + 1]);
        Assert.Equal(0, bm.Memory.Bytes[(d.SharedInfoMfn << 12) + 0]);
        Assert.Equal(0UL, bm.Memory.Peek64((d.SharedInfoMfn << 12) + 2048)); // evtchn_pending
        Assert.Equal(d.DomainId, bm.FrameTable.OwnerOf(d.SharedInfoMfn));
    }

    [Fact]
    public void Every_bootstrap_page_is_mapped_to_its_frame_with_Xens_flags_and_tables_read_only()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, true, out Domain d));
        ulong ptStart = KernelBase + 0xC000, ptEnd = KernelBase + 0x11000;
        for (ulong pfn = 0; pfn < 1024; pfn++)
        {
            ulong va = KernelBase + pfn * 4096;
            ulong pa = Translate(bm, d, va, out ulong flags);
            Assert.Equal(d.P2m[pfn] << 12, pa);
            bool table = va >= ptStart && va < ptEnd;
            // Xen's L1_PROT: Present|RW|Accessed|User, no Dirty; table pages lose RW.
            Assert.Equal(table ? P | U | A : P | W | U | A, flags);
            Assert.Equal(d.DomainId, bm.FrameTable.OwnerOf(d.P2m[pfn]));
        }
        Assert.False(PageTable.Translate(bm.Memory, d.Vcpu.GuestTable, KernelBase + 0x40_0000, out _, out _, out _));
        Assert.False(PageTable.Translate(bm.Memory, d.Vcpu.GuestTable, KernelBase - 4096, out _, out _, out _));
        // Intermediate entries carry Xen's L2/L3/L4_PROT (with Dirty).
        ulong l4e = bm.Memory.Peek64(d.Vcpu.GuestTable + 511 * 8);
        Assert.Equal(P | W | U | A | D, l4e & 0xFFF);
    }

    [Fact]
    public void P2m_list_holds_each_frame_and_the_m2p_agrees_with_distinct_frames()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, true, out Domain d));
        var seen = new System.Collections.Generic.HashSet<ulong>();
        for (ulong pfn = 0; pfn < 2048; pfn++)
        {
            ulong entry = bm.Memory.Peek64(Translate(bm, d, KernelBase + 0x7000 + pfn * 8, out _));
            Assert.Equal(d.P2m[pfn], entry);
            Assert.True(seen.Add(entry));
            Assert.Equal(d.DomainId, bm.FrameTable.OwnerOf(entry));
        }
        Assert.DoesNotContain(d.SharedInfoMfn, seen);
    }

    [Fact]
    public void Segments_are_loaded_at_virtual_base_plus_paddr_with_bss_zeroed()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, true, out Domain d));
        for (int i = 0; i < Text.Length; i++)
            if (i < 0x1000 || i >= 0x2000) // the hypercall page overlays text page 0x2000
                Assert.Equal(Text[i], bm.Memory.Bytes[Translate(bm, d, KernelBase + 0x1000 + (ulong)i, out _)]);
        for (int i = 0; i < 0x3000; i++)
            Assert.Equal(i < Data.Length ? Data[i] : (byte)0, bm.Memory.Bytes[Translate(bm, d, KernelBase + 0x4000 + (ulong)i, out _)]);
        // Pages the image does not fill hold zeroes, not the frames' old contents.
        Assert.Equal(0UL, bm.Memory.Peek64(Translate(bm, d, KernelBase, out _)));
        Assert.Equal(0UL, bm.Memory.Peek64(d.P2m[2047] << 12));
    }

    [Fact]
    public void Frame_types_and_counts_follow_Xens_bootstrap_references()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, true, out Domain d));
        FrameTable ft = bm.FrameTable;
        ulong l4 = d.Vcpu.GuestTable >> 12;
        Assert.Equal(FrameType.L4PageTable, ft.TypeOf(l4));
        Assert.Equal(d.P2m[12], l4);                      // the first table page is the L4
        Assert.Equal(2u, ft.TypeCount(l4));               // guest_table + pin
        Assert.Equal(3u, ft.RefCount(l4));                // + its read-only mapping
        Assert.True(ft.IsPinned(l4));
        Assert.True(ft.IsValidated(l4));
        int[] levels = new int[5];
        for (ulong pfn = 12; pfn < 17; pfn++)
        {
            FrameType t = ft.TypeOf(d.P2m[pfn]);
            levels[(int)t]++;
            if (t == FrameType.L4PageTable) continue;
            Assert.Equal(1u, ft.TypeCount(d.P2m[pfn]));   // its parent's entry
            Assert.Equal(2u, ft.RefCount(d.P2m[pfn]));    // parent entry + read-only mapping
            Assert.True(ft.IsValidated(d.P2m[pfn]));
            Assert.False(ft.IsPinned(d.P2m[pfn]));
        }
        Assert.Equal(new[] { 0, 2, 1, 1, 1 }, levels);
        for (ulong pfn = 0; pfn < 1024; pfn++)
        {
            if (pfn >= 12 && pfn < 17) continue;
            Assert.True(FrameType.Writable == ft.TypeOf(d.P2m[pfn]), $"pfn {pfn} mfn {d.P2m[pfn]} {ft.TypeOf(d.P2m[pfn])} tc {ft.TypeCount(d.P2m[pfn])} rc {ft.RefCount(d.P2m[pfn])}");
            Assert.Equal(1u, ft.TypeCount(d.P2m[pfn]));
            Assert.Equal(1u, ft.RefCount(d.P2m[pfn]));
        }
        for (ulong pfn = 1024; pfn < 2048; pfn++)
        {
            Assert.Equal(FrameType.None, ft.TypeOf(d.P2m[pfn]));
            Assert.Equal(0u, ft.RefCount(d.P2m[pfn]));
        }
        Assert.Equal(FrameType.Writable, ft.TypeOf(d.SharedInfoMfn));
    }

    [Fact]
    public void Hypercall_page_disassembles_to_Xens_ring3_stubs()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, true, out Domain d));
        ulong page = Translate(bm, d, KernelBase + 0x2000, out _);
        for (int nr = 0; nr < 128; nr++)
        {
            byte[] stub = new byte[32];
            Array.Copy(bm.Memory.Bytes, (long)page + nr * 32, stub, 0, 32);
            var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(stub));
            var expected = nr == 23
                ? new[] { Code.Push_r64, Code.Push_r64, Code.Push_r64, Code.Mov_r32_imm32, Code.Syscall }
                : new[] { Code.Push_r64, Code.Push_r64, Code.Mov_r32_imm32, Code.Syscall, Code.Pop_r64, Code.Pop_r64, Code.Retnq };
            var regs = nr == 23
                ? new[] { Register.RCX, Register.R11, Register.RAX, Register.EAX, Register.None }
                : new[] { Register.RCX, Register.R11, Register.EAX, Register.None, Register.R11, Register.RCX, Register.None };
            foreach (var (code, i) in Zip(expected))
            {
                Instruction ins = decoder.Decode();
                Assert.Equal(code, ins.Code);
                if (regs[i] != Register.None) Assert.Equal(regs[i], ins.Op0Register);
                if (code == Code.Mov_r32_imm32) Assert.Equal((uint)nr, ins.Immediate32);
            }
            int used = (int)decoder.IP;
            Assert.Equal(nr == 23 ? 11 : 14, used);
            for (int b = used; b < 32; b++) Assert.Equal(0xCC, stub[b]); // int3 fill
        }
    }

    private static (Code, int)[] Zip(Code[] codes)
    {
        var r = new (Code, int)[codes.Length];
        for (int i = 0; i < codes.Length; i++) r[i] = (codes[i], i);
        return r;
    }

    [Fact]
    public void Debian_61_notes_map_the_p2m_at_INIT_P2M_with_its_own_tables()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Debian61().Build(), 8192, true, out Domain d));
        // kernel [+16 MiB, +16 MiB+0x5000); p2m elsewhere, so start_info at +0x1005000 and tables from
        // +0x1006000: L4, L3, L2 and ten L1s for the 20 MiB region = 13; stack ends +0x1014000.
        Assert.Equal(KernelBase + 0x100_2000, d.Vcpu.Regs.Rip);
        Assert.Equal(KernelBase + 0x100_5000, d.Vcpu.Regs.Rsi);
        Assert.Equal(KernelBase + 0x101_4000, d.Vcpu.Regs.Rsp);
        ulong si = StartInfoAddress(bm, d);
        Assert.Equal("xen-3.0-x86_64p", Magic(bm, si)); // Xen's dom0 builder marks a PAE_MODE kernel
        Assert.Equal(KernelBase + 0x100_6000, bm.Memory.Peek64(si + SI.pt_base));
        Assert.Equal(13UL, bm.Memory.Peek64(si + SI.nr_pt_frames));
        Assert.Equal(0x80_0000_0000UL, bm.Memory.Peek64(si + SI.mfn_list));
        // 20 MiB bootstrap = pfns 0..5119; then L3, L2, L1 and 16 p2m pages.
        Assert.Equal(5120UL, bm.Memory.Peek64(si + SI.first_p2m_pfn));
        Assert.Equal(19UL, bm.Memory.Peek64(si + SI.nr_p2m_frames));
        Assert.False(PageTable.Translate(bm.Memory, d.Vcpu.GuestTable, KernelBase + 0x140_0000, out _, out _, out _));
        Assert.True(PageTable.Translate(bm.Memory, d.Vcpu.GuestTable, KernelBase + 0x13F_F000, out _, out _, out _));
        for (ulong pfn = 0; pfn < 8192; pfn++)
        {
            ulong pa = Translate(bm, d, 0x80_0000_0000 + pfn * 8, out ulong flags);
            Assert.Equal(d.P2m[pfn], bm.Memory.Peek64(pa));
            Assert.Equal(P | W | U | A | D, flags); // L1_PROT|_PAGE_DIRTY
        }
        FrameTable ft = bm.FrameTable;
        Assert.Equal(FrameType.L3PageTable, ft.TypeOf(d.P2m[5120]));
        Assert.Equal(FrameType.L2PageTable, ft.TypeOf(d.P2m[5121]));
        Assert.Equal(FrameType.L1PageTable, ft.TypeOf(d.P2m[5122]));
        for (ulong pfn = 5120; pfn < 5123; pfn++)
        {
            Assert.Equal(1u, ft.TypeCount(d.P2m[pfn]));
            Assert.Equal(1u, ft.RefCount(d.P2m[pfn])); // not mapped by the guest, only referenced by its parent
        }
        for (ulong pfn = 5123; pfn < 5139; pfn++) Assert.Equal(FrameType.Writable, ft.TypeOf(d.P2m[pfn]));
        Assert.Equal(FrameType.None, ft.TypeOf(d.P2m[5139]));
        Assert.Equal(d.P2m[5120] << 12, bm.Memory.Peek64(d.Vcpu.GuestTable + 8) & PageTableEntry.AddressMask);
    }

    [Fact]
    public void Non_initial_domain_gets_a_console_ring_after_start_info_and_no_privileges()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Debian61().Build(), 8192, false, out Domain d, id: 3));
        ulong si = StartInfoAddress(bm, d);
        Assert.Equal("xen-3.0-x86_64", Magic(bm, si));
        Assert.Equal(0u, BitConverter.ToUInt32(bm.Memory.Bytes, (int)si + SI.flags));
        // The console page follows start_info, pushing the tables one page up.
        Assert.Equal(KernelBase + 0x100_7000, bm.Memory.Peek64(si + SI.pt_base));
        ulong consoleMfn = d.P2m[0x1006];
        Assert.True(d.ConsoleEvtchn > 0);
        Assert.Equal(consoleMfn, d.ConsoleRingMfn);
        Assert.Equal(consoleMfn, bm.Memory.Peek64(si + SI.console_domU_mfn));
        Assert.Equal((uint)d.ConsoleEvtchn, BitConverter.ToUInt32(bm.Memory.Bytes, (int)si + SI.console_domU_evtchn));
        Assert.Equal(P | W | U | A, Flags(bm, d, KernelBase + 0x100_6000));
        // Microhv writes the ring by machine address: it keeps a writable type the guest cannot turn
        // into a page table (issue 14: every write on the hypervisor's own initiative honours the page's type).
        Assert.Equal(FrameType.Writable, bm.FrameTable.TypeOf(consoleMfn));
        Assert.Equal(2u, bm.FrameTable.TypeCount(consoleMfn));
        Assert.NotEqual(0, Microhv.Hypervisor.Mm.PageTypes.GetPageType(bm.Machine, d, consoleMfn, FrameType.L1PageTable));
    }

    private static ulong Flags(BuilderMachine bm, Domain d, ulong va)
    {
        Translate(bm, d, va, out ulong flags);
        return flags;
    }

    [Fact]
    public void Without_VIRT_BASE_virtual_equals_physical_and_entry_defaults_to_the_ELF_entry()
    {
        var x = new XenImage { ElfEntry = 0x40_0800 };
        x.Note(N.XEN_ELFNOTE_XEN_VERSION, "xen-3.0").Note(N.XEN_ELFNOTE_GUEST_OS, "linux");
        x.Load(0x40_0000, 0x40_0000, Text, 0x3000);
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(x.Build(), 4096, true, out Domain d));
        Assert.Equal(0x40_0800UL, d.Vcpu.Regs.Rip);
        Assert.Equal(d.P2m[0] << 12, Translate(bm, d, 0, out _));
        Assert.Equal(d.P2m[0x400] << 12, Translate(bm, d, 0x40_0000, out _));
        Assert.Equal(Text[5], bm.Memory.Bytes[Translate(bm, d, 0x40_0005, out _)]);
        // p2m 4096*8 = 32 KiB at 0x403000, start_info at 0x40B000.
        Assert.Equal(0x40_B000UL, d.Vcpu.Regs.Rsi);
        Assert.Equal(0x40_3000UL, bm.Memory.Peek64(StartInfoAddress(bm, d) + SI.mfn_list));
    }

    [Theory]
    [InlineData("!auto_translated_physmap", DomainBuildStatus.RequiresUnsupportedFeature)]
    [InlineData("writable_page_tables|!supervisor_mode_kernel", DomainBuildStatus.RequiresUnsupportedFeature)]
    [InlineData("!hvm_callback_vector", DomainBuildStatus.RequiresUnsupportedFeature)]
    [InlineData("!no_such_feature", DomainBuildStatus.BadNotes)]
    [InlineData("no_such_feature|!pae_pgdir_above_4gb", DomainBuildStatus.Ok)]
    public void Required_features_Microhv_lacks_refuse_the_image(string features, DomainBuildStatus expected)
    {
        var x = Minimal().Note(N.XEN_ELFNOTE_FEATURES, features);
        var bm = new BuilderMachine();
        ulong free = bm.Frames.FreeFrames;
        Assert.Equal(expected, bm.Build(x.Build(), 2048, true, out Domain d));
        if (expected == DomainBuildStatus.Ok) return;
        Assert.Null(d);
        Assert.Equal(0, bm.Machine.DomainCount);
        Assert.Equal(free, bm.Frames.FreeFrames);
        Assert.Equal("requires unsupported feature", Builder.StatusName(DomainBuildStatus.RequiresUnsupportedFeature));
    }

    [Fact]
    public void Initial_domain_refused_when_SUPPORTED_FEATURES_lacks_dom0()
    {
        var x = Minimal().Note(N.XEN_ELFNOTE_SUPPORTED_FEATURES, 1, 4);
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.NoInitialDomainSupport, bm.Build(x.Build(), 2048, true, out _));
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(x.Build(), 2048, false, out _, id: 1));
    }

    [Fact]
    public void Images_without_Xen_notes_or_for_another_Xen_version_are_refused()
    {
        var none = new XenImage { ElfEntry = 0x1000 };
        none.RawNote("GNU", 3, new byte[20]);
        none.Load(0x1000, 0x1000, Text, 0x3000);
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.NoXenNotes, bm.Build(none.Build(), 2048, true, out _));
        var old = new XenImage { ElfEntry = 0x1000 };
        old.Note(N.XEN_ELFNOTE_XEN_VERSION, "xen-2.0");
        old.Load(0x1000, 0x1000, Text, 0x3000);
        Assert.Equal(DomainBuildStatus.NotForXen30, bm.Build(old.Build(), 2048, true, out _));
        Assert.Equal(0, bm.Machine.DomainCount);
    }

    [Fact]
    public void Truncated_or_corrupt_images_are_refused_without_reading_outside_them()
    {
        byte[] good = Minimal().Build();
        var bm = new BuilderMachine();
        ulong free = bm.Frames.FreeFrames;
        // Every length short of the last segment's file bytes (the image ends with 0x800 bytes of padding).
        for (int length = 0; length < good.Length - 0x800; length += 61)
        {
            bm.Place(good);
            bm.Memory.RestrictReads(BuilderMachine.ImageAddress, (ulong)length);
            var status = Builder.Build(bm.Machine, 0, BuilderMachine.ImageAddress, (ulong)length, 2048, true, null, 0, out Domain d);
            Assert.NotEqual(DomainBuildStatus.Ok, status);
            Assert.Null(d);
        }
        bm.Memory.RestrictReads(0, BuilderMachine.Bytes);
        Assert.Empty(bm.Memory.Faults);
        Assert.Equal(free, bm.Frames.FreeFrames);

        byte[] bad = (byte[])good.Clone();
        bad[0] = 0x7E;
        Assert.Equal(DomainBuildStatus.NotElf64X86, bm.Build(bad, 2048, true, out _));
        bad = (byte[])good.Clone();
        XenImage.Put64(bad, 32, 0xFFFF_FFFF_FFFF_FFC0); // e_phoff wraps
        Assert.Equal(DomainBuildStatus.NotElf64X86, bm.Build(bad, 2048, true, out _));
        bad = (byte[])good.Clone();
        XenImage.Put64(bad, 64 + 8, 0xFFFF_FFFF_FFFF_F000); // first PT_LOAD's p_offset outside the image
        Assert.Equal(DomainBuildStatus.SegmentOutsideMemory, bm.Build(bad, 2048, true, out _));
        bad = (byte[])good.Clone();
        XenImage.Put64(bad, 64 + 24, 0xFFFF_FFFF_FFFF_F000); // p_paddr + p_memsz wraps
        Assert.Equal(DomainBuildStatus.SegmentOutsideMemory, bm.Build(bad, 2048, true, out _));
        Assert.Equal(0, bm.Machine.DomainCount);
        Assert.Equal(free, bm.Frames.FreeFrames);
    }

    [Fact]
    public void Image_larger_than_the_domain_or_the_machine_is_refused_and_frames_return()
    {
        var big = Minimal();
        big.Load(0x10_0000, KernelBase + 0x10_0000, Data, 0x20_0000, Elf64ProgramHeader.PF_R | Elf64ProgramHeader.PF_W);
        var bm = new BuilderMachine();
        ulong free = bm.Frames.FreeFrames;
        Assert.Equal(DomainBuildStatus.NotEnoughMemory, bm.Build(big.Build(), 256, true, out _));
        // The region rounds up to 4 MiB (1024 pages): 1000 pages is too few even though the kernel fits.
        Assert.Equal(DomainBuildStatus.NotEnoughMemory, bm.Build(Minimal().Build(), 1000, true, out _));
        // More pages than the machine has free: the frames taken so far go back.
        Assert.Equal(DomainBuildStatus.OutOfFrames, bm.Build(Minimal().Build(), free, true, out _));
        Assert.Equal(free, bm.Frames.FreeFrames);
        for (ulong mfn = 1024; mfn < (ulong)BuilderMachine.Bytes / 4096; mfn++)
            Assert.Equal(FrameTable.OwnerNone, bm.FrameTable.OwnerOf(mfn));
        Assert.Equal(0, bm.Machine.DomainCount);
        Assert.Equal("not enough memory", Builder.StatusName(DomainBuildStatus.NotEnoughMemory));
    }

    [Fact]
    public void Domain_ids_are_unique()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, true, out _));
        Assert.Equal(DomainBuildStatus.DomainIdInUse, bm.Build(Minimal().Build(), 2048, false, out _));
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Minimal().Build(), 2048, false, out Domain d1, id: 1));
        Assert.Equal(2, bm.Machine.DomainCount);
        Assert.NotEqual(bm.Machine.FindDomain(0).P2m[0], d1.P2m[0]);
    }

    [Fact]
    public void Hypercall_page_outside_the_mapping_or_on_the_page_tables_is_refused()
    {
        var bm = new BuilderMachine();
        var x = Minimal();
        x.Notes.RemoveAll(n => n.Type == N.XEN_ELFNOTE_HYPERCALL_PAGE);
        x.Note(N.XEN_ELFNOTE_HYPERCALL_PAGE, KernelBase + 0xC000); // the L4
        Assert.Equal(DomainBuildStatus.BadHypercallPage, bm.Build(x.Build(), 2048, true, out _));
        x.Notes.RemoveAll(n => n.Type == N.XEN_ELFNOTE_HYPERCALL_PAGE);
        x.Note(N.XEN_ELFNOTE_HYPERCALL_PAGE, KernelBase + 0x40_0000);
        Assert.Equal(DomainBuildStatus.BadHypercallPage, bm.Build(x.Build(), 2048, true, out _));
    }
}
