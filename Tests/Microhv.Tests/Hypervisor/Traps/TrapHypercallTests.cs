using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>set_trap_table, callback_op/set_callbacks, stack_switch, set_segment_base.</summary>
public class TrapHypercallTests
{
    private static readonly ulong Args = TrapsGuest.Va(TrapsGuest.ArgsSlot);

    [Fact]
    public void SetTrapTableCopiesUntilAddressZeroAndFixesRpl()
    {
        var g = new TrapsGuest();
        // {vector 14, flags 4|0, cs 0xe030, handler}, {vector 0x80, flags 3, cs 0xe033, handler}, {0, 0, 0, 0}
        g.Write64(Args + 0, 14 | (4 << 8) | (0xE030UL << 16)); g.Write64(Args + 8, 0xFFFF_FFFF_8100_1000);
        g.Write64(Args + 16, 0x80 | (3 << 8) | (0xE033UL << 16)); g.Write64(Args + 24, 0xFFFF_FFFF_8100_2000);
        g.Write64(Args + 32, 5 | (0xE033UL << 16)); g.Write64(Args + 40, 0);
        Assert.Equal(0, SetTrapTable.Do(g.V, Args));
        Assert.Equal(0xFFFF_FFFF_8100_1000UL, g.V.TrapTable[14].Address);
        Assert.Equal(4, g.V.TrapTable[14].Flags);
        Assert.Equal(0xE033, g.V.TrapTable[14].Cs);
        Assert.Equal(0xFFFF_FFFF_8100_2000UL, g.V.TrapTable[0x80].Address);
        Assert.Equal(0UL, g.V.TrapTable[5].Address);              // the terminator is not stored

        Assert.Equal(0, SetTrapTable.Do(g.V, 0));                  // NULL clears
        Assert.Equal(0UL, g.V.TrapTable[14].Address);

        Assert.Equal(-Errno.EFAULT, SetTrapTable.Do(g.V, 0x900_0000));
        Assert.Equal(-Errno.EFAULT, SetTrapTable.Do(g.V, 0xFFFF_8000_0000_0000));

        g.Write64(Args + 0, 3); g.Write64(Args + 8, 0x0000_8000_0000_0000);   // non-canonical handler
        Assert.Equal(-Errno.EINVAL, SetTrapTable.Do(g.V, Args));

        // A list running off the mapped page faults on the first unreadable entry.
        ulong last = TrapsGuest.Va(TrapsGuest.Slots) - 16;
        g.Write64(last, 7); g.Write64(last + 8, 0xFFFF_FFFF_8100_3000);
        Assert.Equal(-Errno.EFAULT, SetTrapTable.Do(g.V, last));
        Assert.Equal(0xFFFF_FFFF_8100_3000UL, g.V.TrapTable[7].Address);
    }

    [Fact]
    public void CallbackOpRegistersAndRefusesToUnregister()
    {
        var g = new TrapsGuest();
        g.Write64(Args, Callback.CALLBACKTYPE_event);
        g.Write64(Args + 8, 0xFFFF_FFFF_8100_4000);
        Assert.Equal(0, CallbackOp.Do(g.V, Callback.CALLBACKOP_register, Args));
        Assert.Equal(0xFFFF_FFFF_8100_4000UL, g.V.EventCallback);

        g.Write64(Args, Callback.CALLBACKTYPE_syscall | ((ulong)Callback.CALLBACKF_mask_events << 16));
        g.Write64(Args + 8, 0xFFFF_FFFF_8100_5000);
        Assert.Equal(0, CallbackOp.Do(g.V, Callback.CALLBACKOP_register, Args));
        Assert.Equal(0xFFFF_FFFF_8100_5000UL, g.V.SyscallCallback);
        Assert.True(g.V.SyscallMasksEvents);

        g.Write64(Args, 99);
        Assert.Equal(-Errno.ENOSYS, CallbackOp.Do(g.V, Callback.CALLBACKOP_register, Args));
        g.Write64(Args, Callback.CALLBACKTYPE_event);
        Assert.Equal(-Errno.EINVAL, CallbackOp.Do(g.V, Callback.CALLBACKOP_unregister, Args));
        Assert.Equal(-Errno.EFAULT, CallbackOp.Do(g.V, Callback.CALLBACKOP_register, 0x900_0000));
        Assert.Equal(-Errno.ENOSYS, CallbackOp.Do(g.V, 7, Args));

        Assert.Equal(0, CallbackOp.SetCallbacks(g.V, 0x10, 0x20, 0x30));
        Assert.Equal((0x10UL, 0x20UL, 0x30UL), (g.V.EventCallback, g.V.FailsafeCallback, g.V.SyscallCallback));
        Assert.False(g.V.SyscallMasksEvents);
    }

    [Fact]
    public void StackSwitchAndSegmentBases()
    {
        var g = new TrapsGuest();
        Assert.Equal(0, StackSwitch.Do(g.V, 0xE028, 0xFFFF_C900_0000_8000));
        Assert.Equal(0xE02BUL, g.V.KernelSs);
        Assert.Equal(0xFFFF_C900_0000_8000UL, g.V.KernelSp);

        Assert.Equal(0, SetSegmentBase.Do(g.V, ArchX86.SEGBASE_FS, 0x7F00_0000_1000));
        Assert.Equal(0, SetSegmentBase.Do(g.V, ArchX86.SEGBASE_GS_KERNEL, 0xFFFF_8880_0000_0000));
        Assert.Equal(0, SetSegmentBase.Do(g.V, ArchX86.SEGBASE_GS_USER, 0x1000));
        Assert.Equal((0x7F00_0000_1000UL, 0xFFFF_8880_0000_0000UL, 0x1000UL), (g.V.FsBase, g.V.GsBaseKernel, g.V.GsBaseUser));
        Assert.Equal(-Errno.EINVAL, SetSegmentBase.Do(g.V, ArchX86.SEGBASE_FS, 0x0000_8000_0000_0000));
        Assert.Equal(-Errno.EINVAL, SetSegmentBase.Do(g.V, ArchX86.SEGBASE_GS_KERNEL, 0xFFFF_7FFF_FFFF_FFFF));
        Assert.Equal(0x7F00_0000_1000UL, g.V.FsBase);
        Assert.Equal(-Errno.EINVAL, SetSegmentBase.Do(g.V, 4, 0));
        // Loading the null selector into the user GS clears its base.
        Assert.Equal(0, SetSegmentBase.Do(g.V, ArchX86.SEGBASE_GS_USER_SEL, 0));
        Assert.Equal(0UL, g.V.GsBaseUser);
    }
}
