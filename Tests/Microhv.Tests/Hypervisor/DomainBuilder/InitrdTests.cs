using System;
using System.Text;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;
using Builder = Microhv.Hypervisor.DomainBuilder;
using N = Microhv.Hypervisor.Public.ElfNote;
using SI = Microhv.Hypervisor.Public.StartInfo;

namespace Microhv.Tests.Hypervisor.DomainBuilder;

/// <summary>
/// An initial ramdisk handed to a kernel with XEN_ELFNOTE_MOD_START_PFN, as Xen's dom0 builder does
/// for Linux: outside the initial mapping, in the pseudo-physical frames after the ones the builder
/// used, start_info.mod_start = its first PFN, mod_len = its length, SIF_MOD_START_PFN in flags.
/// </summary>
public class InitrdTests
{
    private const ulong KernelBase = 0xFFFF_FFFF_8000_0000;
    private const ulong InitrdAddress = 0x30_0000;       // inside the builder machine's reserved first 4 MiB
    private static readonly byte[] Text = XenImage.Pattern(0x3000, 1);

    private static XenImage Kernel(bool modStartPfn, bool initP2m)
    {
        var x = new XenImage { ElfEntry = 0x100_0000 };
        x.Note(N.XEN_ELFNOTE_XEN_VERSION, "xen-3.0")
         .Note(N.XEN_ELFNOTE_VIRT_BASE, KernelBase)
         .Note(N.XEN_ELFNOTE_PADDR_OFFSET, 0)
         .Note(N.XEN_ELFNOTE_ENTRY, KernelBase + 0x100_2000);
        if (initP2m) x.Note(N.XEN_ELFNOTE_INIT_P2M, 0x80_0000_0000);
        if (modStartPfn) x.Note(N.XEN_ELFNOTE_MOD_START_PFN, 1, 4);
        x.Load(0x100_0000, KernelBase + 0x100_0000, Text, 0x5000);
        return x;
    }

    private static DomainBuildStatus Build(BuilderMachine bm, XenImage image, byte[] initrd, ulong nrPages, out Domain d)
    {
        bm.Place(image.Build());
        Array.Copy(initrd, 0, bm.Memory.Bytes, (int)InitrdAddress, initrd.Length);
        byte[] c = Encoding.ASCII.GetBytes("console=hvc0");
        return Builder.Build(bm.Machine, 0, BuilderMachine.ImageAddress, bm.ImageLength, nrPages, true, c, c.Length,
            InitrdAddress, (ulong)initrd.Length, out d);
    }

    private static ulong StartInfo(BuilderMachine bm, Domain d)
    {
        Assert.True(PageTable.Translate(bm.Memory, d.Vcpu.GuestTable, d.Vcpu.Regs.Rsi, out ulong pa, out _, out _));
        return pa;
    }

    [Fact]
    public void Initrd_lands_after_the_p2m_frames_and_start_info_names_its_pfn()
    {
        var bm = new BuilderMachine();
        byte[] initrd = XenImage.Pattern(0x2345, 7);       // 3 pages, the last one partly used
        Assert.Equal(DomainBuildStatus.Ok, Build(bm, Kernel(true, true), initrd, 8192, out Domain d));
        ulong si = StartInfo(bm, d);
        // 20 MiB bootstrap = pfns 0..5119; the p2m at INIT_P2M takes 5120..5138 (L3, L2, L1, 16 pages): the initrd starts at 5139.
        Assert.Equal(5139UL, bm.Memory.Peek64(si + SI.mod_start));
        Assert.Equal((ulong)initrd.Length, bm.Memory.Peek64(si + SI.mod_len));
        uint flags = (uint)bm.Memory.Peek64(si + SI.flags);
        Assert.Equal(Xen.SIF_PRIVILEGED | Xen.SIF_INITDOMAIN | Xen.SIF_MOD_START_PFN, flags);
        for (int i = 0; i < initrd.Length; i++)
            Assert.Equal(initrd[i], bm.Memory.Bytes[(int)((d.P2m[5139 + (ulong)(i >> 12)] << 12) + (ulong)(i & 0xFFF))]);
        ulong tail = d.P2m[5141] << 12;
        for (int i = 0x345; i < 0x1000; i++) Assert.Equal(0, bm.Memory.Bytes[(int)tail + i]);   // rest of the last page zeroed
        Assert.Equal(FrameType.None, bm.FrameTable.TypeOf(d.P2m[5139]));                       // ordinary RAM to the guest
    }

    [Fact]
    public void Without_INIT_P2M_the_initrd_follows_the_bootstrap_region()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, Build(bm, Kernel(true, false), new byte[] { 1, 2, 3 }, 8192, out Domain d));
        ulong si = StartInfo(bm, d);
        // kernel to +16 MiB+0x5000, the p2m (16 pages), start_info, 13 tables, stack: all below +20 MiB with 512 KiB slack.
        Assert.Equal(5120UL, bm.Memory.Peek64(si + SI.mod_start));
        Assert.Equal(1, bm.Memory.Bytes[(int)(d.P2m[5120] << 12)]);
    }

    [Fact]
    public void Kernel_without_MOD_START_PFN_or_too_little_memory_is_refused()
    {
        var bm = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.InitrdNeedsModStartPfn, Build(bm, Kernel(false, true), new byte[] { 1 }, 8192, out _));
        // With 5145 pages the p2m is 11 pages (+3 tables), so the builder uses pfns 0..5133: 16 more do not fit.
        Assert.Equal(DomainBuildStatus.NotEnoughMemory, Build(bm, Kernel(true, true), new byte[16 * 4096], 5145, out _));
        Assert.Equal(DomainBuildStatus.Ok, Build(bm, Kernel(true, true), new byte[16 * 4096], 5150, out _));
    }
}
