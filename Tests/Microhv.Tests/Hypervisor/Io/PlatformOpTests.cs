using Microhv.Hypervisor;
using Microhv.Tests.Hypervisor.Services;
using Xunit;

namespace Microhv.Tests.Hypervisor.Io;

/// <summary>platform_op as Linux dom0 uses it at boot (xen/arch/x86/platform_hypercall.c).</summary>
public class PlatformOpTests
{
    private const uint Version = 0x03000001;
    private const uint XENPF_settime64 = 62, XENPF_firmware_info = 50, XENPF_get_cpuinfo = 55, XENPF_microcode_update = 35;
    private const ulong Op = ServiceGuest.Base;

    private static ServiceGuest Dom0() => new ServiceGuest(id: 0, initial: true);

    private static void Header(ServiceGuest g, uint cmd, uint version = Version)
    {
        g.W32(Op, cmd);
        g.W32(Op + 4, version);
    }

    [Fact]
    public void Wrong_interface_version_is_eacces_and_other_domains_eperm()
    {
        var g = Dom0();
        Header(g, XENPF_get_cpuinfo, 0x03000000);
        Assert.Equal(-13, PlatformOp.Do(g.V, Op));
        var domU = new ServiceGuest(id: 1);
        Header(domU, XENPF_get_cpuinfo);
        Assert.Equal(-1, PlatformOp.Do(domU.V, Op));
        Assert.Equal(-14, PlatformOp.Do(g.V, ServiceGuest.Unmapped));
    }

    [Fact]
    public void Firmware_info_answers_kbd_flags_and_esrch_for_missing_disks()
    {
        var g = Dom0();
        g.Tm.Memory.Write8(PlatformOp.BdaKeyboardFlags, 0x20);    // num lock
        Header(g, XENPF_firmware_info);
        g.W32(Op + 8, 5);                                          // XEN_FW_KBD_SHIFT_FLAGS
        g.W32(Op + 12, 0);
        Assert.Equal(0, PlatformOp.Do(g.V, Op));
        Assert.Equal(0x20, g.R8(Op + 16));
        g.W32(Op + 12, 1);
        Assert.Equal(-3, PlatformOp.Do(g.V, Op));
        g.W32(Op + 8, 1);                                          // XEN_FW_DISK_INFO index 0: none
        g.W32(Op + 12, 0);
        Assert.Equal(-3, PlatformOp.Do(g.V, Op));
        g.W32(Op + 8, 4);                                          // XEN_FW_EFI_INFO: not booted by EFI
        Assert.Equal(-38, PlatformOp.Do(g.V, Op));
        g.W32(Op + 8, 99);
        Assert.Equal(-22, PlatformOp.Do(g.V, Op));
    }

    [Fact]
    public void Get_cpuinfo_names_the_boot_cpu_and_flags_the_rest_invalid()
    {
        var g = Dom0();
        Header(g, XENPF_get_cpuinfo);
        g.W32(Op + 8, 0);
        Assert.Equal(0, PlatformOp.Do(g.V, Op));
        Assert.Equal(0u, g.R32(Op + 12));                          // max_present
        Assert.Equal(1u, g.R32(Op + 16));                          // XEN_PCPU_FLAGS_ONLINE
        g.W32(Op + 8, 1);
        Assert.Equal(0, PlatformOp.Do(g.V, Op));
        Assert.Equal(2u, g.R32(Op + 16));                          // XEN_PCPU_FLAGS_INVALID
    }

    [Fact]
    public void Settime64_moves_every_domains_wall_clock_and_checks_mbz()
    {
        var g = Dom0();
        g.D.SharedInfoMfn = g.Tm.NewFrame(0);
        Header(g, XENPF_settime64);
        g.W64(Op + 8, 1_800_000_000);
        g.W32(Op + 16, 500);
        g.W32(Op + 20, 0);
        g.W64(Op + 24, 2_000_000_000);                            // at system time 2 s
        Assert.Equal(0, PlatformOp.Do(g.V, Op));
        ulong si = g.D.SharedInfoMfn * 4096;
        Assert.Equal(1_799_999_998u, g.Tm.Memory.Read32(si + 3076));   // wc_sec: the wall time at system time 0
        Assert.Equal(500u, g.Tm.Memory.Read32(si + 3080));
        g.W32(Op + 20, 1);
        Assert.Equal(-22, PlatformOp.Do(g.V, Op));
    }

    [Fact]
    public void Commands_microhv_does_not_carry_out_are_enosys()
    {
        var g = Dom0();
        Header(g, XENPF_microcode_update);
        Assert.Equal(-38, PlatformOp.Do(g.V, Op));
    }
}
