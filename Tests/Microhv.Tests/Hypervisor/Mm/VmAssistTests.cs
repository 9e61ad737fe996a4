using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Mm;

public class VmAssistTests
{
    [Theory]
    [InlineData(0)] [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(4)] [InlineData(5)] [InlineData(32)]
    public void XensX86_64AssistsCanBeEnabledAndDisabled(int type)
    {
        var g = new MmGuest(adopt: false);
        Assert.Equal(0, VmAssist.Do(g.V, Xen.VMASST_CMD_enable, (ulong)type));
        Assert.Equal(1UL << type, g.Dom.VmAssist);
        Assert.Equal(0, VmAssist.Do(g.V, Xen.VMASST_CMD_disable, (ulong)type));
        Assert.Equal(0UL, g.Dom.VmAssist);
    }

    [Theory]
    [InlineData(6)] [InlineData(31)] [InlineData(33)] [InlineData(64)] [InlineData(1000)]
    public void OtherTypesAreInvalid(int type)
    {
        var g = new MmGuest(adopt: false);
        Assert.Equal(-Errno.EINVAL, VmAssist.Do(g.V, Xen.VMASST_CMD_enable, (ulong)type));
        Assert.Equal(0UL, g.Dom.VmAssist);
    }

    [Fact]
    public void UnknownCommandIsEnosys()
    {
        var g = new MmGuest(adopt: false);
        Assert.Equal(-Errno.ENOSYS, VmAssist.Do(g.V, 2, Xen.VMASST_TYPE_writable_pagetables));
    }
}
