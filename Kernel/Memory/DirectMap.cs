using System.Threading;
using Microhv.HAL;

namespace Microhv.Kernel.Memory;

/// <summary>
/// All physical memory is mapped at DIRECTMAP_VMA (0xFFFF830000000000, where Xen keeps its direct
/// map). This is the kernel's PhysicalMemory: the HAL and hypervisor code reach frames through it.
/// </summary>
internal sealed unsafe class DirectMap : PhysicalMemory
{
    public const ulong Base = 0xFFFF830000000000;
    /// <summary>How much physical address space the direct map covers (set when the kernel's page tables are built).</summary>
    public static ulong Limit = 4UL << 30;
    public static readonly DirectMap Instance = new DirectMap();

    public static byte* ToVirtual(ulong physical) => (byte*)(Base + physical);

    public override byte Read8(ulong a) => *(byte*)(Base + a);
    public override ushort Read16(ulong a) => *(ushort*)(Base + a);
    public override uint Read32(ulong a) => *(uint*)(Base + a);
    public override ulong Read64(ulong a) => *(ulong*)(Base + a);
    public override void Write8(ulong a, byte v) => *(byte*)(Base + a) = v;
    public override void Write16(ulong a, ushort v) => *(ushort*)(Base + a) = v;
    public override void Write32(ulong a, uint v) => *(uint*)(Base + a) = v;
    public override void Write64(ulong a, ulong v) => *(ulong*)(Base + a) = v;
    // The atomics guest-shared words need (event bits, FIFO event words): LOCK CMPXCHG in place (RyuJIT's
    // Interlocked intrinsics), the loops of Or/Clear here rather than through the base class's virtual calls.
    public override uint CompareExchange32(ulong a, uint value, uint comparand)
        => (uint)Interlocked.CompareExchange(ref *(int*)(Base + a), (int)value, (int)comparand);
    public override ulong CompareExchange64(ulong a, ulong value, ulong comparand)
        => (ulong)Interlocked.CompareExchange(ref *(long*)(Base + a), (long)value, (long)comparand);
    public override uint Or32(ulong a, uint bits) => Update32((int*)(Base + a), (int)bits, 0);
    public override uint Clear32(ulong a, uint bits) => Update32((int*)(Base + a), 0, (int)bits);
    public override ulong Or64(ulong a, ulong bits) => Update64((long*)(Base + a), (long)bits, 0);
    public override ulong Clear64(ulong a, ulong bits) => Update64((long*)(Base + a), 0, (long)bits);
    /// <summary>A set bit is seen without a locked instruction; a clear one is set by LOCK CMPXCHG in place (this
    /// is the hot half of every event send: the pending bit and the selector bit).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public override bool TestAndSetBit64(ulong a, int bit)
    {
        long* p = (long*)(Base + a);
        long mask = 1L << bit, old = *p;
        while ((old & mask) == 0)
        {
            long found = Interlocked.CompareExchange(ref *p, old | mask, old);
            if (found == old) return false;
            old = found;
        }
        return true;
    }

    /// <summary>Atomically sets <paramref name="set"/> and clears <paramref name="clear"/>; returns the word before.</summary>
    private static uint Update32(int* p, int set, int clear)
    {
        int old = *p;
        while (true)
        {
            int found = Interlocked.CompareExchange(ref *p, (old | set) & ~clear, old);
            if (found == old) return (uint)old;
            old = found;
        }
    }

    private static ulong Update64(long* p, long set, long clear)
    {
        long old = *p;
        while (true)
        {
            long found = Interlocked.CompareExchange(ref *p, (old | set) & ~clear, old);
            if (found == old) return (ulong)old;
            old = found;
        }
    }
    public override bool Contains(ulong a, ulong length) => a < Limit && length <= Limit - a;

    public override void Fill(ulong a, byte value, ulong length)
        => Internal.Runtime.Memory.Set((byte*)(Base + a), value, (nuint)length);

    public override void Read(ulong a, byte[] buffer, int offset, int length)
    {
        if (offset < 0 || length < 0 || offset > buffer.Length - length) return;
        fixed (byte* b = buffer) Internal.Runtime.Memory.Move(b + offset, (byte*)(Base + a), (nuint)length);
    }

    public override void Copy(ulong destination, ulong source, ulong length)
        => Internal.Runtime.Memory.Move((byte*)(Base + destination), (byte*)(Base + source), (nuint)length);
}
