using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Io;
using Microhv.Kernel.Console;
using Microhv.Kernel.Timer;

namespace Microhv.Kernel.Pv;

/// <summary>
/// What of the machine the hypervisor keeps and what the hardware domain gets (Xen's
/// arch_init_memory and dom0_setup_permissions): the firmware memory map, the frames that are I/O
/// space (DOMID_IO: the low 1 MiB and everything that is not RAM), the ports of the devices Microhv
/// drives, and the MMIO pages it drives (local APIC, IO-APIC, HPET, the MSI window).
/// </summary>
internal static unsafe class HostResources
{
    /// <summary>Where the IO-APIC is when the firmware has no MADT (the PC default).</summary>
    public const ulong IoApicDefaultBase = 0xFEC00000, HpetDefaultBase = 0xFED00000, MsiWindow = 0xFEE00000;

    public static void Register(Machine m, Multiboot2Info info)
    {
        for (int i = 0; i < info.MemoryMapCount; i++)
        {
            info.GetMemoryMapEntry(i, out ulong b, out ulong len, out uint type);
            m.HostMemoryMap.Add(b, len, type);
        }
        FrameTable ft = m.FrameTable;
        ulong io = 0;
        for (ulong mfn = 0; mfn < ft.FrameCount; mfn++)
        {
            if (mfn >= 0x100 && m.HostMemoryMap.IsRam(mfn)) continue;
            ft.SetOwner(mfn, FrameTable.OwnerIo);
            io++;
        }

        IoPorts ports = m.IoPorts;
        ports.DenyPcDefaults();
        ports.Deny(SerialPort.Com1, SerialPort.Com1 + 7, "serial console (COM1)");
        if (QemuExit.Enabled) ports.Deny(QemuExit.Port, QemuExit.Port + 3, "isa-debug-exit (microhv.exit)");

        IoMem mem = m.IoMem;
        mem.MfnLimit = 1UL << (PhysicalAddressBits() - 12);
        mem.Deny(LocalApic.PhysicalBase >> 12, LocalApic.PhysicalBase >> 12, "local APIC");
        // Every IO-APIC is Microhv's; the one whose lines start at GSI 0 routes the hardware domain's pirqs.
        ulong ioApic = Platform.HasMadt ? 0 : IoApicDefaultBase;
        for (int i = 0; i < Platform.Madt.IoApicCount; i++)
        {
            ulong page = Platform.Madt.IoApics[i].Address >> 12;
            mem.Deny(page, page, "IO-APIC");
            if (Platform.Madt.IoApics[i].GsiBase == 0) ioApic = Platform.Madt.IoApics[i].Address;
        }
        if (!Platform.HasMadt) mem.Deny(IoApicDefaultBase >> 12, IoApicDefaultBase >> 12, "IO-APIC");
        if (ioApic != 0 && Irq.IoApic.Initialize(ioApic) && Log.ShowInfo)
        {
            Log.Write("irq: IO-APIC at "); Log.Hex(ioApic, 8); Log.Write(", "); Log.Dec((ulong)Irq.IoApic.Lines);
            Log.Line(" lines (GSIs), all masked until the hardware domain binds them");
        }
        mem.ReadOnly(HpetDefaultBase >> 12, HpetDefaultBase >> 12, "HPET (read-only, as Xen without ACPI page protection)");
        mem.Deny(MsiWindow >> 12, (MsiWindow >> 12) + 0xFF, "MSI address window");

        if (Log.ShowInfo)
        {
            Log.Write("hwdom: "); Log.Dec((ulong)m.HostMemoryMap.Count); Log.Write(" firmware memory ranges, ");
            Log.Dec(io); Log.Write(" frames of I/O space below RAM's top; "); Log.Dec((ulong)ports.Count);
            Log.Write(" port ranges and "); Log.Dec((ulong)mem.Count); Log.Line(" MMIO ranges kept by Microhv");
        }
    }

    /// <summary>CPUID 0x80000008 EAX[7:0], 36 when the leaf is missing.</summary>
    private static int PhysicalAddressBits()
    {
        uint* r = stackalloc uint[4];
        Cpu.CpuId(0x80000000, 0, r);
        if (r[0] < 0x80000008) return 36;
        Cpu.CpuId(0x80000008, 0, r);
        int bits = (int)(r[0] & 0xFF);
        return bits < 32 || bits > 52 ? 36 : bits;
    }
}
