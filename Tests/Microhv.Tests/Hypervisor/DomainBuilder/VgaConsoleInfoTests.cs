using System;
using Microhv.Hypervisor;
using Xunit;
using Builder = Microhv.Hypervisor.DomainBuilder;
using N = Microhv.Hypervisor.Public.ElfNote;
using SI = Microhv.Hypervisor.Public.StartInfo;
using HAL = Microhv.HAL;

namespace Microhv.Tests.Hypervisor.DomainBuilder;

/// <summary>
/// The screen's description the hardware domain finds after its start_info (Xen's fill_console_start_info
/// and xen.h struct dom0_vga_console_info). Offsets are the C layout worked out by hand: video_type at 0,
/// the union 4-byte aligned at 4 (vesa_lfb has uint32_t fields), 40 bytes with ext_lfb_base; Linux's
/// xen_init_vga reads the same offsets (arch/x86/xen/vga.c).
/// </summary>
public class VgaConsoleInfoTests
{
    private const ulong KernelBase = 0xFFFF_FFFF_8000_0000;

    private static XenImage Image()
    {
        var x = new XenImage { ElfEntry = 0xDEAD };
        x.Note(N.XEN_ELFNOTE_ENTRY, KernelBase + 0x1000)
         .Note(N.XEN_ELFNOTE_VIRT_BASE, KernelBase)
         .Note(N.XEN_ELFNOTE_HYPERCALL_PAGE, KernelBase + 0x2000)
         .Note(N.XEN_ELFNOTE_XEN_VERSION, "xen-3.0");
        x.Load(0x1000, KernelBase + 0x1000, XenImage.Pattern(0x3000, 1), 0x3000);
        return x;
    }

    private static ulong StartInfo(BuilderMachine bm, Domain d)
    {
        Assert.True(HAL.PageTable.Translate(bm.Memory, d.Vcpu.GuestTable, d.Vcpu.Regs.Rsi, out ulong pa, out _, out _));
        return pa;
    }

    private static ushort U16(BuilderMachine bm, ulong a) => BitConverter.ToUInt16(bm.Memory.Bytes, (int)a);
    private static uint U32(BuilderMachine bm, ulong a) => BitConverter.ToUInt32(bm.Memory.Bytes, (int)a);

    [Fact]
    public void Text_mode_3_follows_start_info_with_its_font_cursor_and_size()
    {
        var bm = new BuilderMachine();
        bm.Machine.VgaConsole.SetTextMode3(cursorX: 0, cursorY: 17);
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Image().Build(), 2048, true, out Domain d));
        ulong si = StartInfo(bm, d);

        Assert.Equal(1168u, U32(bm, si + 72));   // console.dom0.info_off = sizeof(start_info)
        Assert.Equal(40u, U32(bm, si + 76));     // console.dom0.info_size = sizeof(dom0_vga_console_info)
        ulong ci = si + 1168;
        Assert.Equal(0x03, bm.Memory.Bytes[ci]);  // XEN_VGATYPE_TEXT_MODE_3
        Assert.Equal(0, bm.Memory.Bytes[ci + 1] | bm.Memory.Bytes[ci + 2] | bm.Memory.Bytes[ci + 3]);
        Assert.Equal(16, U16(bm, ci + 4));       // font_height
        Assert.Equal(0, U16(bm, ci + 6));        // cursor_x
        Assert.Equal(17, U16(bm, ci + 8));       // cursor_y
        Assert.Equal(25, U16(bm, ci + 10));      // rows
        Assert.Equal(80, U16(bm, ci + 12));      // columns
        for (ulong i = 14; i < 40; i++) Assert.Equal(0, bm.Memory.Bytes[ci + i]);
        // The command line and the p2m fields before it are untouched.
        Assert.Equal("console=hvc0", System.Text.Encoding.ASCII.GetString(bm.Memory.Bytes, (int)si + SI.cmd_line, 12));
    }

    [Fact]
    public void Efi_framebuffer_gives_the_lfb_fields_with_the_high_base_and_size_in_64k_units()
    {
        var bm = new BuilderMachine();
        // A GOP framebuffer above 4 GiB: 1280x800, 32 bpp xRGB, 5120 bytes a line.
        Assert.True(bm.Machine.VgaConsole.SetLinearFramebuffer(true, 0x8_C000_0000, 5120, 1280, 800, 32, 16, 8, 8, 8, 0, 8));
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Image().Build(), 2048, true, out Domain d));
        ulong si = StartInfo(bm, d);
        Assert.Equal(1168u, U32(bm, si + 72));
        Assert.Equal(40u, U32(bm, si + 76));
        ulong ci = si + 1168;
        Assert.Equal(0x70, bm.Memory.Bytes[ci]);  // XEN_VGATYPE_EFI_LFB
        Assert.Equal(1280, U16(bm, ci + 4));     // width
        Assert.Equal(800, U16(bm, ci + 6));      // height
        Assert.Equal(5120, U16(bm, ci + 8));     // bytes_per_line
        Assert.Equal(32, U16(bm, ci + 10));      // bits_per_pixel
        Assert.Equal(0xC000_0000u, U32(bm, ci + 12)); // lfb_base (low half)
        Assert.Equal(63u, U32(bm, ci + 16));     // lfb_size: 5120*800 = 4,096,000 bytes = 62.5 x 64 KiB, rounded up
        Assert.Equal(new byte[] { 16, 8, 8, 8, 0, 8, 24, 8 }, bm.Memory.Bytes[(int)(ci + 20)..(int)(ci + 28)]); // r, g, b, rsvd pos/size
        Assert.Equal(0u, U32(bm, ci + 28));      // gbl_caps
        Assert.Equal(0, U16(bm, ci + 32));       // mode_attrs
        Assert.Equal(8u, U32(bm, ci + 36));      // ext_lfb_base
    }

    [Fact]
    public void Bios_framebuffer_is_a_vesa_lfb_and_16bpp_has_no_reserved_bits()
    {
        var info = new VgaConsoleInfo();
        Assert.True(info.SetLinearFramebuffer(false, 0xFD00_0000, 2048, 1024, 768, 16, 11, 5, 5, 6, 0, 5));
        Assert.Equal(0x23, info.VideoType);
        Assert.Equal(0, info.RsvdSize);
        Assert.Equal(24u, info.LfbSize64K);
        Assert.False(info.SetLinearFramebuffer(true, 0xFD00_0000, 70000, 17500, 768, 32, 16, 8, 8, 8, 0, 8));
        Assert.False(info.Present);
    }

    [Fact]
    public void Only_the_initial_domain_gets_the_screen_and_none_without_one()
    {
        var bm = new BuilderMachine();
        bm.Machine.VgaConsole.SetTextMode3(0, 0);
        Assert.Equal(DomainBuildStatus.Ok, bm.Build(Image().Build(), 2048, false, out Domain domU, id: 1));
        ulong si = StartInfo(bm, domU);
        // A non-initial domain's union is console.domU: the ring's mfn and event channel, never the screen.
        Assert.Equal(domU.ConsoleRingMfn, bm.Memory.Peek64(si + SI.console_domU_mfn));
        Assert.Equal(0, bm.Memory.Bytes[si + 1168]);

        var none = new BuilderMachine();
        Assert.Equal(DomainBuildStatus.Ok, none.Build(Image().Build(), 2048, true, out Domain dom0));
        ulong si0 = StartInfo(none, dom0);
        Assert.Equal(0UL, none.Memory.Peek64(si0 + SI.console_dom0_info_off));
        Assert.Equal(0, none.Memory.Bytes[si0 + 1168]);
    }
}
