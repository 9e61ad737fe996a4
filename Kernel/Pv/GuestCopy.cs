using System.Runtime;
using System.Runtime.CompilerServices;
using Microhv.Hypervisor;

namespace Microhv.Kernel.Pv;

/// <summary>
/// The hypervisor's live access to the running guest's memory: Boot/guest_copy.asm's loads, stores
/// and copies, whose faults the #PF/#GP handler fixes up (Kernel/Traps/ExceptionFixup.cs) into a
/// false return. GuestMemory checks the range (canonical, clear of the hypervisor's hole) and that
/// CR3 holds the vCPU's own L4 before it calls here.
/// </summary>
internal sealed unsafe class GuestCopy : LiveGuestMemory
{
    /// <summary>CR3's L4 address bits (the low 12 are PCD/PWT or a PCID, bit 63 is write-only).</summary>
    private const ulong Cr3AddressMask = 0x000F_FFFF_FFFF_F000UL;

    [RuntimeImport("*", "guest_read8")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Read8(ulong va, byte* value);
    [RuntimeImport("*", "guest_read16")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Read16(ulong va, ushort* value);
    [RuntimeImport("*", "guest_read32")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Read32(ulong va, uint* value);
    [RuntimeImport("*", "guest_read64")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Read64(ulong va, ulong* value);
    [RuntimeImport("*", "guest_write8")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Write8(ulong va, byte value);
    [RuntimeImport("*", "guest_write32")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Write32(ulong va, uint value);
    [RuntimeImport("*", "guest_write64")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Write64(ulong va, ulong value);
    [RuntimeImport("*", "guest_copy")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern int Copy(void* destination, void* source, ulong length);

    public override ulong LoadedRoot => Cpu.ReadCr3() & Cr3AddressMask;

    public override bool ReadU8(ulong va, out byte value) { byte x; int r = Read8(va, &x); value = x; return r == 0; }
    public override bool ReadU16(ulong va, out ushort value) { ushort x; int r = Read16(va, &x); value = x; return r == 0; }
    public override bool ReadU32(ulong va, out uint value) { uint x; int r = Read32(va, &x); value = x; return r == 0; }
    public override bool ReadU64(ulong va, out ulong value) { ulong x; int r = Read64(va, &x); value = x; return r == 0; }
    public override bool WriteU8(ulong va, byte value) => Write8(va, value) == 0;
    public override bool WriteU32(ulong va, uint value) => Write32(va, value) == 0;
    public override bool WriteU64(ulong va, ulong value) => Write64(va, value) == 0;

    public override bool Read(ulong va, byte[] buffer, int offset, int length)
    {
        if (length == 0) return true;
        fixed (byte* b = &buffer[offset]) return Copy(b, (void*)va, (ulong)length) == 0;
    }

    public override bool Write(ulong va, byte[] buffer, int offset, int length)
    {
        if (length == 0) return true;
        fixed (byte* b = &buffer[offset]) return Copy((void*)va, b, (ulong)length) == 0;
    }

    // The words are a struct on the caller's stack, so their address is fixed without pinning. Inlined into the
    // hot paths that copy one (the bounce frame of a trap or upcall, the iret context): one call, to guest_copy.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool ReadU64s(ulong va, ref ulong first, int count) => Copy(Unsafe.AsPointer(ref first), (void*)va, (ulong)count * 8) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool WriteU64s(ulong va, ref ulong first, int count) => Copy((void*)va, Unsafe.AsPointer(ref first), (ulong)count * 8) == 0;
}
