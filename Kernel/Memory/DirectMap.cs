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
    public override uint CompareExchange32(ulong a, uint value, uint comparand) => Cpu.CompareExchange32(Base + a, value, comparand);
    public override ulong CompareExchange64(ulong a, ulong value, ulong comparand) => Cpu.CompareExchange64(Base + a, value, comparand);
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
