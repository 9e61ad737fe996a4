using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>PhysicalMemory's read-modify-write operations on guest-shared words return the word as it was
/// (Xen's test_and_set_bit / test_and_clear_bit / cmpxchg), whatever the kernel's LOCK-prefixed versions do underneath.</summary>
public sealed class PhysicalMemoryAtomicsTests
{
    private readonly SimulatedMemory _m = new(0x1000, 4096);

    [Fact]
    public void Compare_exchange_stores_only_on_a_match_and_returns_what_it_found()
    {
        _m.Write32(0x1008, 5);
        Assert.Equal(5u, _m.CompareExchange32(0x1008, 9, 4));
        Assert.Equal(5u, _m.Read32(0x1008));
        Assert.Equal(5u, _m.CompareExchange32(0x1008, 9, 5));
        Assert.Equal(9u, _m.Read32(0x1008));
        Assert.Equal(0u, _m.Read32(0x100C));                                  // the neighbour is untouched
        _m.Write64(0x1010, 0xFFFF_0000_0000_0001);
        Assert.Equal(0xFFFF_0000_0000_0001, _m.CompareExchange64(0x1010, 2, 0xFFFF_0000_0000_0001));
        Assert.Equal(2UL, _m.Read64(0x1010));
    }

    [Fact]
    public void Or_and_clear_return_the_old_word()
    {
        _m.Write32(0x1000, 0x8000_0001);
        Assert.Equal(0x8000_0001u, _m.Or32(0x1000, 0x2000_0000));
        Assert.Equal(0xA000_0001u, _m.Clear32(0x1000, 0x8000_0000));
        Assert.Equal(0x2000_0001u, _m.Read32(0x1000));
        Assert.Equal(0UL, _m.Or64(0x1018, 1UL << 63));
        Assert.Equal(1UL << 63, _m.Clear64(0x1018, 1UL << 63));
        Assert.Equal(0UL, _m.Read64(0x1018));
    }
}
