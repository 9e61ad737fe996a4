using System.Runtime;
using System.Runtime.CompilerServices;
using Microhv.HAL;

namespace Microhv.Kernel.Traps;

/// <summary>
/// Xen's search_exception_table: the hypervisor's #PF and #GP at an instruction of Boot/guest_copy.asm
/// (a copy to or from a guest address that the guest's own tables do not allow) resume at that
/// instruction's fixup, which makes the copy return "faulted"; the hypercall then returns -EFAULT.
/// Such a fault is neither fatal nor the guest's own: it is not bounced, and the guest's CR2 (kept in
/// its vcpu_info) is untouched. Any other fault in the hypervisor stays fatal.
/// </summary>
internal static unsafe class ExceptionFixup
{
    /// <summary>Guest accesses fixed up since boot, on every processor (the domain summary prints it).</summary>
    public static ulong Count;

    [RuntimeImport("*", "ex_table_bounds")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern void TableBounds(ulong** start, ulong** end);

    /// <summary>True when <paramref name="frame"/>'s RIP is listed: the frame now resumes at its fixup.</summary>
    public static bool Apply(TrapFrame* frame)
    {
        ulong* start, end;
        TableBounds(&start, &end);
        for (ulong* entry = start; entry < end; entry += 2)
        {
            if (entry[0] != frame->Rip) continue;
            frame->Rip = entry[1];
            System.Threading.Interlocked.Increment(ref Count);   // a copy outside the lock may fault too
            return true;
        }
        return false;
    }
}
