using Microhv.HAL;
using Microhv.Tests.Hosted;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>
/// The CS and SS a vCPU context may start with (DescriptorCheck.ContextSelectorOkay): Xen's flat ring-3
/// selectors, or RPL-3 selectors of the vCPU's own GDT whose descriptor is a present 64-bit code segment
/// (CS) or a writable data segment (SS), as Linux gives its secondary CPUs (__KERNEL_CS 0x10 and
/// __KERNEL_DS 0x18 in a GDT whose descriptors set_gdt raised to DPL 3).
/// </summary>
public class ContextSelectorTests
{
    private const ulong Code64 = 0x00AFFB000000FFFF, Code32 = 0x00CFFB000000FFFF, Data = 0x00CFF3000000FFFF, ReadOnlyData = 0x00CFF1000000FFFF;
    private readonly SimulatedMemory _mem = new(0, 4 * 4096);
    private readonly ulong[] _frames = { 2 };

    public ContextSelectorTests()
    {
        ulong gdt = 2 * 4096;
        _mem.Write64(gdt + 2 * 8, Code64);                  // 0x10: Linux's kernel CS
        _mem.Write64(gdt + 3 * 8, Data);                    // 0x18: its kernel DS
        _mem.Write64(gdt + 4 * 8, Code32);                  // 0x20: a 32-bit code segment
        _mem.Write64(gdt + 5 * 8, Code64 & ~(1UL << 47));   // 0x28: not present
        _mem.Write64(gdt + 6 * 8, ReadOnlyData);            // 0x30: data, not writable
        _mem.Write64(gdt + 7 * 8, 0x00AF9B000000FFFF);      // 0x38: DPL 0 (never stored so by set_gdt)
    }

    private bool Cs(ushort sel, int entries = 16) => DescriptorCheck.ContextSelectorOkay(_mem, _frames, entries, sel, true);
    private bool Ss(ushort sel, int entries = 16) => DescriptorCheck.ContextSelectorOkay(_mem, _frames, entries, sel, false);

    [Fact]
    public void Xens_flat_selectors_are_always_fine()
    {
        Assert.True(Cs(Xen.FLAT_RING3_CS64, 0));
        Assert.True(Cs(Xen.FLAT_RING3_CS32, 0));
        Assert.True(Ss(Xen.FLAT_RING3_SS64, 0));
        Assert.False(Ss(Xen.FLAT_RING3_CS64, 0));
    }

    [Fact]
    public void Linuxs_kernel_selectors_in_its_own_gdt_are_fine()
    {
        Assert.True(Cs(0x13));
        Assert.True(Ss(0x1B));
    }

    [Fact]
    public void Anything_the_first_iret_would_fault_on_is_refused()
    {
        Assert.False(Cs(0x1B));               // data as CS
        Assert.False(Ss(0x13));               // code as SS
        Assert.False(Cs(0x23));               // 32-bit code
        Assert.False(Cs(0x2B));               // not present
        Assert.False(Ss(0x33));               // read-only data
        Assert.False(Cs(0x3B));               // DPL 0
        Assert.False(Cs(0x13, entries: 2));   // past the GDT's entry count
        Assert.False(Cs(0x03));               // the null selector
        Assert.False(Cs(0x17));               // an LDT selector
        Assert.False(Cs(0x12));               // RPL 2 (callers fix ring 0 up to 3 first)
    }
}
