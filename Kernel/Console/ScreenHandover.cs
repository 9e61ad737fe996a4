using Microhv.HAL;
using Microhv.Hypervisor;

namespace Microhv.Kernel.Console;

/// <summary>
/// The screen passes to the hardware domain, as on Xen: the domain is told what the screen is
/// (<see cref="Machine.VgaConsole"/>, copied after its start_info) and Microhv stops drawing on it
/// (Xen's video_endboot without vga=keep), so Linux's vgacon or efifb owns it. Microhv's log goes on on COM1.
/// </summary>
internal static class ScreenHandover
{
    private const ushort CrtIndex = 0x3D4, CrtData = 0x3D5;
    private const byte CursorHigh = 0x0E, CursorLow = 0x0F;

    /// <summary>
    /// Before the domains are built: when an initial domain is about to be, Microhv lets the screen go and
    /// describes it in <paramref name="m"/>, with text mode's cursor below Microhv's last line.
    /// </summary>
    public static void BeforeDomains(Machine m, Multiboot2Info info)
    {
        if (info.ModuleCount == 0) return;
        if (ScreenConsole.Active)
        {
            Log.Line("console: Microhv is relinquishing the screen to the hardware domain (console=vga keeps it only until dom0 starts)");
            ScreenConsole.Relinquish();
        }
        if (info.HasFramebuffer && info.FramebufferType == 1 /* direct RGB */)
        {
            m.VgaConsole.SetLinearFramebuffer(info.HasEfi64SystemTable, info.FramebufferAddress, info.FramebufferPitch,
                info.FramebufferWidth, info.FramebufferHeight, info.FramebufferBpp,
                info.FramebufferRedPosition, info.FramebufferRedMaskSize, info.FramebufferGreenPosition,
                info.FramebufferGreenMaskSize, info.FramebufferBluePosition, info.FramebufferBlueMaskSize);
        }
        else if (!info.HasEfi64SystemTable)
        {
            // BIOS text mode: the hardware cursor is where the text ends, whoever wrote it (Microhv or GRUB).
            Cpu.OutB(CrtIndex, CursorHigh);
            int position = Cpu.InB(CrtData) << 8;
            Cpu.OutB(CrtIndex, CursorLow);
            position |= Cpu.InB(CrtData);
            m.VgaConsole.SetTextMode3(position % 80, position / 80);
        }
    }

    /// <summary>After the domains are built: without an initial domain nobody took the screen, and Microhv draws on it again.</summary>
    public static void AfterDomains(Machine m)
    {
        for (int i = 0; i < m.DomainCount; i++)
            if (m.Domains[i].IsInitialDomain) return;
        m.VgaConsole.Clear();
        if ((BootOptions.Console & ConsoleOutputs.Vga) == 0 || ScreenConsole.Kind == ScreenConsole.None) return;
        ScreenConsole.Reclaim();
        Log.Line("console: no hardware domain started; Microhv draws on the screen again");
    }
}
