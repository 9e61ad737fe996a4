using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel;

/// <summary>
/// Turns the machine off through ACPI sleep state S5: the FADT's PM1 control blocks and the
/// DSDT's \_S5_ values, found at boot from the RSDP GRUB passes. Works on QEMU (which then exits)
/// and on PCs whose firmware describes S5 the common way.
/// </summary>
internal static class PowerOff
{
    private static AcpiPowerOff s_acpi;
    public static bool Available;

    public static void Initialize(Multiboot2Info info)
    {
        AcpiStatus status = AcpiStatus.NoRsdp;
        if (info.HasAcpiNewRsdp) status = AcpiPowerOff.Find(DirectMap.Instance, info.AcpiNewRsdpAddress, info.AcpiNewRsdpLength, out s_acpi);
        if (status != AcpiStatus.Ok && info.HasAcpiOldRsdp) status = AcpiPowerOff.Find(DirectMap.Instance, info.AcpiOldRsdpAddress, info.AcpiOldRsdpLength, out s_acpi);
        Available = status == AcpiStatus.Ok;
        if (!Log.ShowInfo) return;
        if (Available)
        {
            Log.Write("acpi: power-off through S5: PM1a_CNT "); Log.HexShort(s_acpi.Pm1aControlBlock);
            Log.Write(", SLP_TYPa "); Log.Dec(s_acpi.SlpTypA); Log.Line();
        }
        else
        {
            Log.Write("acpi: no power-off ("); Log.Write(StatusName(status)); Log.Line(")");
        }
    }

    /// <summary>Enters S5. Returns only if the machine did not turn off.</summary>
    public static void Now()
    {
        if (!Available) return;
        ushort pm1a = (ushort)s_acpi.Pm1aControlBlock;
        if ((Cpu.InW(pm1a) & AcpiPowerOff.SciEn) == 0 && s_acpi.SmiCommandPort != 0 && s_acpi.AcpiEnable != 0)
        {
            Cpu.OutB((ushort)s_acpi.SmiCommandPort, s_acpi.AcpiEnable);       // hand ACPI over from SMM
            for (int i = 0; i < 1000000 && (Cpu.InW(pm1a) & AcpiPowerOff.SciEn) == 0; i++) Cpu.Pause();
        }
        Cpu.OutW(pm1a, s_acpi.ControlValue(false));
        if (s_acpi.Pm1bControlBlock != 0) Cpu.OutW((ushort)s_acpi.Pm1bControlBlock, s_acpi.ControlValue(true));
        for (int i = 0; i < 1000000; i++) Cpu.Pause();
    }

    private static string StatusName(AcpiStatus s)
    {
        switch (s)
        {
            case AcpiStatus.NoRsdp: return "no RSDP from the boot loader";
            case AcpiStatus.BadRsdp: return "RSDP checksum or signature wrong";
            case AcpiStatus.BadTable: return "a table is malformed";
            case AcpiStatus.NoFadt: return "no valid FADT";
            case AcpiStatus.NoDsdt: return "no valid DSDT";
            default: return "no \\_S5_ package in the DSDT";
        }
    }
}
