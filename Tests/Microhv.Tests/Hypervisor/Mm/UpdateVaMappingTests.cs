using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

public class UpdateVaMappingTests
{
    [Fact]
    public void RemapsTheL1EntryOfTheAddressAndInvalidatesIt()
    {
        var g = new MmGuest();
        ulong va = Va(1) + 0x123;
        Assert.Equal(0, UpdateVaMapping.Do(g.V, va, Pte(g.Spare[0], P | RW | US), Xen.UVMF_INVLPG));
        Assert.Equal(Pte(g.Spare[0], P | RW | US), g.Get(g.L1, 1));
        Assert.Equal(0u, g.TypeCount(g.Data[0]));
        Assert.Equal(1u, g.TypeCount(g.Spare[0]));
        Assert.Equal(new[] { va }, g.T.Host.InvalidatedPages.ToArray());
        Assert.Equal(0, g.T.Host.TlbFlushes);
    }

    [Fact]
    public void FlushKinds()
    {
        var g = new MmGuest();
        Assert.Equal(0, UpdateVaMapping.Do(g.V, Va(20), Pte(g.Spare[0], P | US), Xen.UVMF_TLB_FLUSH | Xen.UVMF_ALL));
        Assert.Equal(1, g.T.Host.TlbFlushes);
        Assert.Equal(0, UpdateVaMapping.Do(g.V, Va(21), Pte(g.Spare[1], P | US), Xen.UVMF_NONE));
        Assert.Equal(1, g.T.Host.TlbFlushes);
        Assert.Empty(g.T.Host.InvalidatedPages);
        // A vCPU mask pointer in the upper bits must be readable.
        g.Arg(0, 1);
        Assert.Equal(0, UpdateVaMapping.Do(g.V, Va(22), 0, Xen.UVMF_TLB_FLUSH | Va(ArgsSlot)));
        Assert.Equal(-Errno.EFAULT, UpdateVaMapping.Do(g.V, Va(22), 0, Xen.UVMF_INVLPG | 0x7000_0000));
    }

    [Fact]
    public void RefusedUpdatesStillFlush()
    {
        var g = new MmGuest();
        Assert.Equal(-Errno.EBUSY, UpdateVaMapping.Do(g.V, Va(20), Pte(g.L2, P | RW | US), Xen.UVMF_TLB_FLUSH));
        Assert.Equal(0UL, g.Get(g.L1, 20));
        Assert.Equal(1, g.T.Host.TlbFlushes);
    }

    [Fact]
    public void AddressesWithoutAnL1AreRefused()
    {
        var g = new MmGuest();
        Assert.Equal(-Errno.EINVAL, UpdateVaMapping.Do(g.V, 0x4000_0000, Pte(g.Spare[0], P | US), 0));     // no L2 entry
        Assert.Equal(-Errno.EINVAL, UpdateVaMapping.Do(g.V, Xen.HYPERVISOR_VIRT_START + 0x1000, Pte(g.Spare[0], P | US), 0));
        Assert.Equal(-Errno.EINVAL, UpdateVaMapping.Do(g.V, 0x0000_8000_0000_0000, Pte(g.Spare[0], P | US), 0));
        Assert.Equal(0u, g.RefCount(g.Spare[0]));
    }

    [Fact]
    public void OtherDomainIsForThePrivilegedOnly()
    {
        var t = new TestMachine();
        var dom0 = new MmGuest(t, id: 0, initial: true);
        var u = new MmGuest(t, id: 1);
        Assert.Equal(-Errno.EPERM, UpdateVaMapping.OtherDomain(u.V, Va(20), Pte(dom0.Spare[0], P | US), 0, 0));
        Assert.Equal(-Errno.ESRCH, UpdateVaMapping.OtherDomain(u.V, Va(20), Pte(u.Spare[0], P | US), 0, 5));
        Assert.Equal(0UL, u.Get(u.L1, 20));
        // The initial domain may map a frame of another domain into its own tables.
        Assert.Equal(0, UpdateVaMapping.OtherDomain(dom0.V, Va(20), Pte(u.Spare[0], P | US), 0, 1));
        Assert.Equal(1u, u.RefCount(u.Spare[0]));
        // ... but only a frame that domain owns.
        Assert.Equal(-Errno.EBUSY, UpdateVaMapping.OtherDomain(dom0.V, Va(21), Pte(dom0.Spare[1], P | US), 0, 1));
    }
}
