using Microhv.HAL;
using Microhv.Kernel.Console;

namespace Microhv.Kernel.Memory;

/// <summary>
/// The kernel's own 4-level page tables, built in C# to replace the boot stub's identity map:
/// the direct map of physical memory (RW, NX), and the image with each section's real permissions
/// (text RX, rodata R+NX, data/bss RW+NX), an unmapped guard page under every stack.
/// </summary>
internal static unsafe class KernelAddressSpace
{
    public static PageTable Tables;
    public static ulong NoExecute;     // PageTableEntry.NoExecute when the CPU supports NX, else 0

    public static bool Build(ref BootLayout layout, FrameSource frames, ulong directMapLimit)
    {
        NoExecute = CpuFeatures.NoExecute ? PageTableEntry.NoExecute : 0;
        if (PageTable.Create(DirectMap.Instance, frames, out Tables) != MapStatus.Ok) return Fail("no frame for the L4");

        ulong rw = PageTableEntry.Present | PageTableEntry.Writable | PageTableEntry.Global;
        MapStatus s = Tables.MapRange(DirectMap.Base, 0, directMapLimit, rw | NoExecute, PageSize.Size2M);
        if (s != MapStatus.Ok) return Fail("direct map");

        if (!MapImage(ref layout, layout.TextStart, layout.TextEnd, PageTableEntry.Present | PageTableEntry.Global)) return false;
        if (!MapImage(ref layout, layout.RodataStart, layout.RodataEnd, PageTableEntry.Present | PageTableEntry.Global | NoExecute)) return false;
        if (!MapImage(ref layout, layout.DataStart, layout.BssEnd, rw | NoExecute)) return false;

        // Guard pages: the boot stack's, the idle stack's and each IST stack's lowest page stay unmapped.
        if (Tables.Unmap(layout.StackGuard) != MapStatus.Ok) return Fail("stack guard");
        if (Tables.Unmap(layout.IdleStackGuard) != MapStatus.Ok) return Fail("idle stack guard");
        for (ulong g = layout.IstStacks; g < layout.IstStacksEnd; g += IstStackSize)
            if (Tables.Unmap(g) != MapStatus.Ok) return Fail("IST guard");

        DirectMap.Limit = directMapLimit;
        Cpu.WriteCr3(Tables.Root);
        Cpu.WriteCr0(Cpu.ReadCr0() | Cr0WriteProtect);
        return true;
    }

    public const ulong IstStackSize = 4096 + 16384;
    private const ulong Cr0WriteProtect = 1UL << 16;

    private static bool MapImage(ref BootLayout layout, ulong start, ulong end, ulong flags)
    {
        start &= ~0xFFFUL;
        end = (end + 0xFFF) & ~0xFFFUL;
        MapStatus s = Tables.MapRange(start, layout.ToPhysical(start), end - start, flags, PageSize.Size4K);
        return s == MapStatus.Ok || Fail("image section");
    }

    private static bool Fail(string what)
    {
        Log.Write("paging: cannot build the kernel page tables: "); Log.Line(what);
        return false;
    }
}
