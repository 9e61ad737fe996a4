using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>Leaf 7 as Xen 4.17's default PV policy offers it.</summary>
public class PvCpuidTests
{
    private const uint Smep = 1u << 7, Smap = 1u << 20, Invpcid = 1u << 10, Umip = 1u << 2, Pku = 1u << 3, SpecCtrl = 1u << 26;

    [Fact]
    public void Leaf_7_keeps_fsgsbase_and_hides_what_a_ring_3_kernel_cannot_use()
    {
        var g = new TrapsGuest();
        g.T.Host.CpuIdLeaves[7] = (~0u, ~0u, ~0u, ~0u);            // the double answers every subleaf alike
        PvCpuid.Query(g.V, 7, 0, out uint a, out uint b, out uint c, out uint d);
        Assert.Equal(1u, a);                                        // subleaves 0 and 1
        Assert.Equal(PvCpuid.Leaf7EbxOffered, b);
        Assert.NotEqual(0u, b & PvCr4.Leaf7EbxFsgsbase);
        Assert.Equal(0u, b & (Smep | Smap | Invpcid));
        Assert.Equal(0u, c & (Umip | Pku));
        Assert.Equal(0u, d & SpecCtrl);
        PvCpuid.Query(g.V, 7, 1, out a, out b, out c, out d);
        Assert.Equal(PvCpuid.Leaf7Sub1EaxOffered, a);
        PvCpuid.Query(g.V, 7, 2, out a, out b, out c, out d);
        Assert.Equal(0u, a | b | c | d);
    }

    [Fact]
    public void A_host_without_a_feature_does_not_gain_it()
    {
        var g = new TrapsGuest();
        g.T.Host.CpuIdLeaves[7] = (0, Smep | Smap, 0, 0);
        PvCpuid.Query(g.V, 7, 0, out uint a, out uint b, out uint c, out uint d);
        Assert.Equal(0u, a | b | c | d);
    }
}
