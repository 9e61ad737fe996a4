using Microhv.HAL;
using Microhv.Kernel.Console;

namespace Microhv.Kernel.Memory;

/// <summary>
/// Turns the multiboot2 memory map into the frame allocator: every "available" range is usable
/// except the first MiB (firmware, real-mode structures), the kernel image, the boot information,
/// the modules, and the symbol tables GRUB loaded for us.
/// </summary>
internal static unsafe class PhysicalMemoryMap
{
    public static FrameAllocator CreateAllocator(Multiboot2Info info, ref BootLayout layout)
    {
        ulong top = 0, usable = 0;
        int ranges = 0;
        for (int i = 0; i < info.MemoryMapCount; i++)
        {
            info.GetMemoryMapEntry(i, out ulong b, out ulong len, out uint type);
            if (type != Multiboot2.MemoryAvailable) continue;
            if (b + len > top) top = b + len;
        }
        if (top == 0) return null;

        ulong frameCount = (top + 0xFFF) / 4096;
        ulong[] bitmap = new ulong[FrameAllocator.BitmapWordsFor(frameCount)];
        if (FrameAllocator.Create(bitmap, 0, frameCount, out FrameAllocator frames) != FrameStatus.Ok) return null;
        for (int i = 0; i < info.MemoryMapCount; i++)
        {
            info.GetMemoryMapEntry(i, out ulong b, out ulong len, out uint type);
            if (type != Multiboot2.MemoryAvailable) continue;
            // Only whole frames inside the range are usable.
            ulong start = (b + 0xFFF) & ~0xFFFUL, end = (b + len) & ~0xFFFUL;
            if (end <= start) continue;
            frames.AddUsableRange(start, end - start);
            usable += end - start;
            ranges++;
        }

        frames.ReserveRange(0, 0x100000);
        ulong imageStart = 0x100000, imageEnd = layout.ToPhysical(layout.ImageEnd);
        frames.ReserveRange(imageStart, imageEnd - imageStart);
        frames.ReserveRange(info.Address & ~0xFFFUL, ((info.Address & 0xFFF) + info.TotalSize + 0xFFF) & ~0xFFFUL);
        for (int m = 0; m < info.ModuleCount; m++)
        {
            info.GetModule(m, out ulong s, out ulong e, out _, out _);
            if (e > s) frames.ReserveRange(s & ~0xFFFUL, ((e + 0xFFF) & ~0xFFFUL) - (s & ~0xFFFUL));
        }
        ReserveLoadedSections(info, frames);

        if (Log.ShowInfo)
        {
            Log.Write("memory: "); Log.Dec(usable >> 20); Log.Write(" MiB usable in "); Log.Dec((ulong)ranges);
            Log.Write(" ranges, "); Log.Dec(frames.FreeFrames); Log.Write(" frames free after reserving firmware, image ");
            Log.Hex(imageStart, 8); Log.Write("-"); Log.Hex(imageEnd, 8); Log.Line(", boot info and modules");
        }
        return frames;
    }

    /// <summary>
    /// Once every domain is built from the boot modules (their kernels and initrds are copied into the domains'
    /// own frames), the modules' frames are free memory, as Xen discards its initial images: the whole frames
    /// of each module that lie in RAM the firmware's map calls available. Returns how many frames were released.
    /// </summary>
    public static ulong ReleaseModules(Multiboot2Info info, FrameAllocator frames)
    {
        ulong released = 0;
        for (int m = 0; m < info.ModuleCount; m++)
        {
            info.GetModule(m, out ulong s, out ulong e, out _, out _);
            if (e <= s) continue;
            for (int i = 0; i < info.MemoryMapCount; i++)
            {
                info.GetMemoryMapEntry(i, out ulong b, out ulong len, out uint type);
                if (type != Multiboot2.MemoryAvailable) continue;
                ulong start = s > b ? s : b, end = e < b + len ? e : b + len;
                if (end > start) released += frames.ReleaseReservedRange(start, end - start);
            }
        }
        return released;
    }

    /// <summary>The direct map covers the low 4 GiB (RAM and the MMIO hole: local APIC, framebuffer) and all RAM above.</summary>
    public static ulong DirectMapLimit(Multiboot2Info info)
    {
        ulong top = 4UL << 30;
        for (int i = 0; i < info.MemoryMapCount; i++)
        {
            info.GetMemoryMapEntry(i, out ulong b, out ulong len, out uint type);
            if (type == Multiboot2.MemoryAvailable && b + len > top) top = b + len;
        }
        if (info.HasFramebuffer && info.FramebufferAddress + (ulong)info.FramebufferPitch * info.FramebufferHeight > top)
            top = info.FramebufferAddress + (ulong)info.FramebufferPitch * info.FramebufferHeight;
        return (top + 0x1FFFFF) & ~0x1FFFFFUL;
    }

    private static void ReserveLoadedSections(Multiboot2Info info, FrameAllocator frames)
    {
        if (!info.HasElfSections) return;
        for (uint i = 0; i < info.ElfSectionCount; i++)
        {
            var sh = Elf64SectionHeader.Read(DirectMap.Instance, info.ElfSectionHeadersAddress + i * info.ElfSectionEntrySize);
            if ((sh.Flags & Elf64SectionHeader.SHF_ALLOC) != 0 || sh.Address == 0 || sh.SectionSize == 0) continue;
            ulong s = sh.Address & ~0xFFFUL, e = (sh.Address + sh.SectionSize + 0xFFF) & ~0xFFFUL;
            frames.ReserveRange(s, e - s);
        }
    }
}
