using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel;

/// <summary>
/// The machine as the firmware describes it, read once at boot: ACPI's MADT (processors, I/O APICs,
/// interrupt source overrides, local APIC NMI pins), and each I/O APIC's number of inputs. The
/// processor bring-up and the hardware domain's interrupt routing both read it from here.
/// </summary>
internal static class Platform
{
    public static readonly AcpiMadt Madt = new AcpiMadt();
    /// <summary>False when the firmware has no usable MADT: one CPU, no I/O APIC known.</summary>
    public static bool HasMadt;
    /// <summary>Inputs (redirection entries) of each I/O APIC in <see cref="Madt"/>, read from its version register.</summary>
    public static readonly uint[] IoApicInputs = new uint[16];

    public static void Initialize(Multiboot2Info info)
    {
        AcpiStatus status = AcpiStatus.NoRsdp;
        if (info.HasAcpiNewRsdp) status = Madt.Find(DirectMap.Instance, info.AcpiNewRsdpAddress, info.AcpiNewRsdpLength);
        if (status != AcpiStatus.Ok && info.HasAcpiOldRsdp) status = Madt.Find(DirectMap.Instance, info.AcpiOldRsdpAddress, info.AcpiOldRsdpLength);
        HasMadt = status == AcpiStatus.Ok;
        if (!HasMadt)
        {
            Madt.ProcessorCount = Madt.IoApicCount = Madt.OverrideCount = Madt.NmiCount = 0;
            Log.Write("acpi: no usable MADT ("); Log.Write(StatusName(status)); Log.Line("): one CPU, no I/O APIC");
            return;
        }
        for (int i = 0; i < Madt.IoApicCount && i < IoApicInputs.Length; i++) IoApicInputs[i] = ReadIoApicInputs(Madt.IoApics[i].Address);
        if (Log.ShowInfo) LogSummary();
    }

    // I/O APIC register 1 (IOAPICVER), bits 16-23: the highest redirection entry.
    private static uint ReadIoApicInputs(uint address)
    {
        if (address == 0 || !DirectMap.Instance.Contains(address, 0x20)) return 0;
        DirectMap.Instance.Write32(address, 1);                       // IOREGSEL
        return ((DirectMap.Instance.Read32(address + 0x10) >> 16) & 0xFF) + 1;   // IOWIN
    }

    private static void LogSummary()
    {
        int enabled = Madt.EnabledProcessorCount;
        Log.Write("acpi: MADT: "); Log.Dec((ulong)enabled); Log.Write(enabled == 1 ? " CPU (APIC id" : " CPUs (APIC ids");
        bool first = true;
        for (int i = 0; i < Madt.ProcessorCount; i++)
        {
            if (!Madt.Processors[i].Enabled) continue;
            Log.Write(first ? " " : ","); Log.Dec(Madt.Processors[i].ApicId);
            first = false;
        }
        if (Madt.ProcessorCount > enabled) { Log.Write("; "); Log.Dec((ulong)(Madt.ProcessorCount - enabled)); Log.Write(" disabled"); }
        Log.Write(")");
        for (int i = 0; i < Madt.IoApicCount; i++)
        {
            Log.Write(", IO-APIC "); Log.Dec(Madt.IoApics[i].Id); Log.Write(" at "); Log.HexShort(Madt.IoApics[i].Address);
            Log.Write(" GSI "); Log.Dec(Madt.IoApics[i].GsiBase); Log.Write("-");
            uint inputs = i < IoApicInputs.Length ? IoApicInputs[i] : 0;
            Log.Dec((ulong)Madt.IoApics[i].GsiBase + (inputs == 0 ? 0 : inputs - 1));
        }
        Log.Write(", "); Log.Dec((ulong)Madt.OverrideCount); Log.Write(Madt.OverrideCount == 1 ? " override" : " overrides");
        if (Madt.Dropped != 0) { Log.Write(", "); Log.Dec((ulong)Madt.Dropped); Log.Write(" entries past capacity ignored"); }
        Log.Line();
        if (!Log.ShowDebug) return;
        Log.Write("acpi: local APIC at "); Log.HexShort(Madt.LocalApicAddress); Log.Line(Madt.PcatCompatible ? ", 8259 PICs present" : "");
        for (int i = 0; i < Madt.OverrideCount; i++)
        {
            Log.Write("acpi: override bus "); Log.Dec(Madt.Overrides[i].Bus); Log.Write(" IRQ "); Log.Dec(Madt.Overrides[i].SourceIrq);
            Log.Write(" -> GSI "); Log.Dec(Madt.Overrides[i].Gsi); Log.Write(" flags "); Log.HexShort(Madt.Overrides[i].Flags); Log.Line();
        }
        for (int i = 0; i < Madt.NmiCount; i++)
        {
            Log.Write("acpi: NMI on LINT"); Log.Dec(Madt.Nmis[i].Lint); Log.Write(" of processor UID ");
            if (Madt.Nmis[i].AcpiUid == MadtLocalApicNmi.AllProcessors) Log.Write("all"); else Log.Dec(Madt.Nmis[i].AcpiUid);
            Log.Write(" flags "); Log.HexShort(Madt.Nmis[i].Flags); Log.Line();
        }
    }

    private static string StatusName(AcpiStatus s)
    {
        switch (s)
        {
            case AcpiStatus.NoRsdp: return "no RSDP from the boot loader";
            case AcpiStatus.BadRsdp: return "RSDP checksum or signature wrong";
            case AcpiStatus.BadTable: return "an entry is malformed";
            default: return "no valid APIC table";
        }
    }
}
