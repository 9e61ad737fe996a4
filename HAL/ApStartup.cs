namespace Microhv.HAL;

/// <summary>
/// The decisions of application-processor start-up, kept apart from the hardware so they are tested on
/// the host: which processors to start, and which page below 1 MiB takes the real-mode trampoline.
/// </summary>
public static class ApStartup
{
    /// <summary>Highest APIC id an xAPIC's 8-bit destination field can reach (255 is the broadcast).</summary>
    public const uint MaxXApicId = 254;

    /// <summary>
    /// Fills <paramref name="targets"/> with the APIC ids to start, in MADT order: enabled processors other
    /// than the boot processor, while the total (boot processor included) stays within <paramref name="maxCpus"/>
    /// (0: no limit) and the capacity of <paramref name="targets"/>. Returns how many; <paramref name="leftOff"/>
    /// counts enabled processors not started because of those limits, <paramref name="unreachable"/> those
    /// whose APIC id an xAPIC cannot address.
    /// </summary>
    public static int SelectTargets(AcpiMadt madt, uint bspApicId, int maxCpus, uint[] targets, out int leftOff, out int unreachable)
    {
        leftOff = unreachable = 0;
        int count = 0;
        for (int i = 0; i < madt.ProcessorCount; i++)
        {
            MadtProcessor p = madt.Processors[i];
            if (!p.Enabled || p.ApicId == bspApicId) continue;
            if (p.ApicId > MaxXApicId) { unreachable++; continue; }
            bool roomLeft = count < targets.Length && (maxCpus == 0 || 1 + count < maxCpus);
            if (!roomLeft) { leftOff++; continue; }
            targets[count++] = p.ApicId;
        }
        return count;
    }

    /// <summary>
    /// A 4 KiB page for the trampoline: below 640 KiB, above page 0 (real-mode interrupt vectors and BIOS
    /// data), wholly inside memory the map calls available, and clear of the boot information and the modules.
    /// </summary>
    public static bool FindTrampolinePage(Multiboot2Info info, out ulong page)
    {
        for (page = 0x1000; page < 0xA0000; page += 0x1000)
        {
            if (!Available(info, page) || Overlaps(page, info.Address, info.TotalSize)) continue;
            bool clear = true;
            for (int m = 0; m < info.ModuleCount && clear; m++)
            {
                info.GetModule(m, out ulong s, out ulong e, out _, out _);
                if (e > s && Overlaps(page, s, e - s)) clear = false;
            }
            if (clear) return true;
        }
        page = 0;
        return false;
    }

    private static bool Available(Multiboot2Info info, ulong page)
    {
        for (int i = 0; i < info.MemoryMapCount; i++)
        {
            info.GetMemoryMapEntry(i, out ulong b, out ulong len, out uint type);
            if (type == Multiboot2.MemoryAvailable && b <= page && page + 0x1000 <= b + len) return true;
        }
        return false;
    }

    private static bool Overlaps(ulong page, ulong start, ulong length) => length != 0 && start < page + 0x1000 && page < start + length;
}
