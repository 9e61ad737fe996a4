using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>mmuext_op through the hypercall entry: 24-byte ops read from guest memory.</summary>
public class MmuExtOpTests
{
    private const int DoneOffset = 0xF00;

    /// <summary>Runs ops given as (cmd, arg1, arg2) triples.</summary>
    private static long Call(MmGuest g, params ulong[] ops)
    {
        for (int i = 0; i < ops.Length / 3; i++)
        {
            g.Arg(i * 24, ops[i * 3]);
            g.Arg(i * 24 + 8, ops[i * 3 + 1]);
            g.Arg(i * 24 + 16, ops[i * 3 + 2]);
        }
        g.Arg(DoneOffset, 0xFFFF_FFFF);
        return MmuExtOp.Do(g.V, Va(ArgsSlot), (ulong)(ops.Length / 3), Va(ArgsSlot) + DoneOffset, Xen.DOMID_SELF);
    }

    [Fact]
    public void PinValidatesAndHoldsTheTypeUntilUnpin()
    {
        var g = new MmGuest();
        ulong l1 = g.Spare[0];
        g.Set(l1, 0, Pte(g.Spare[1], P | RW | US));
        Assert.Equal(0, Call(g, Xen.MMUEXT_PIN_L1_TABLE, l1, 0));
        Assert.Equal(FrameType.L1PageTable, g.Type(l1));
        Assert.Equal(1u, g.TypeCount(l1));
        Assert.True(g.M.FrameTable.IsPinned(l1));
        Assert.Equal(1u, g.TypeCount(g.Spare[1]));

        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_PIN_L1_TABLE, l1, 0));   // pinned twice
        Assert.Equal(1u, g.TypeCount(l1));
        Assert.Equal(0u, g.ReadArg32(DoneOffset));

        Assert.Equal(0, Call(g, Xen.MMUEXT_UNPIN_TABLE, l1, 0));
        Assert.Equal(0u, g.TypeCount(l1));
        Assert.False(g.M.FrameTable.IsPinned(l1));
        Assert.Equal(0u, g.TypeCount(g.Spare[1]));
        Assert.Equal(0u, g.RefCount(l1));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_UNPIN_TABLE, l1, 0));   // not pinned
    }

    [Fact]
    public void PinRefusesFramesInUseOtherwise()
    {
        var g = new MmGuest();
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_PIN_L1_TABLE, g.Data[0], 0));   // mapped writable
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_PIN_L2_TABLE, g.L1, 0));        // already an L1
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_PIN_L1_TABLE, 3, 0));           // not ours
        Assert.Equal(1u, g.TypeCount(g.L1));
        Assert.Equal(FrameType.Writable, g.Type(g.Data[0]));
    }

    [Fact]
    public void NewBaseptrSwitchesTablesAndMovesTheReference()
    {
        var g = new MmGuest();
        ulong l4b = g.Spare[0];
        g.Set(l4b, 0, Pte(g.L3, P | RW | US));
        Assert.Equal(0, Call(g, Xen.MMUEXT_PIN_L4_TABLE, l4b, 0, Xen.MMUEXT_NEW_BASEPTR, l4b, 0));
        Assert.Equal(l4b << 12, g.V.GuestTable);
        Assert.Equal(new[] { l4b << 12 }, g.T.Host.LoadedPageTableBases.ToArray());
        Assert.Equal(2u, g.TypeCount(l4b));
        Assert.Equal(1u, g.TypeCount(g.L4));              // still pinned
        Assert.Equal(2u, g.TypeCount(g.L3));              // referenced by both L4s

        // Unpinning the old root drops its tree's reference, but the new root keeps the L3.
        Assert.Equal(0, Call(g, Xen.MMUEXT_UNPIN_TABLE, g.L4, 0));
        Assert.Equal(0u, g.TypeCount(g.L4));
        Assert.Equal(1u, g.TypeCount(g.L3));
        Assert.Equal(1u, g.TypeCount(g.L1));
        // ... and the old root can now be an ordinary page again.
        Assert.Equal(0, MmuUpdate.One(g.V, g.Dom, EntryMa(g.L1, 20), Pte(g.L4, P | RW | US)));
    }

    [Fact]
    public void NewBaseptrRefusesWhatDoesNotValidateAsL4()
    {
        var g = new MmGuest();
        ulong before = g.V.GuestTable;
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_NEW_BASEPTR, g.Data[0], 0));   // writable data page
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_NEW_BASEPTR, g.L3, 0));        // an L3
        ulong bad = g.Spare[0];
        g.Set(bad, 1, Pte(bad, P | RW | US));                                          // maps itself writable as L3
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_NEW_BASEPTR, bad, 0));
        Assert.Equal(before, g.V.GuestTable);
        Assert.Empty(g.T.Host.LoadedPageTableBases);
    }

    [Fact]
    public void NewUserBaseptrTakesAndReleasesItsL4()
    {
        var g = new MmGuest();
        ulong user = g.Spare[0];
        Assert.Equal(0, Call(g, Xen.MMUEXT_NEW_USER_BASEPTR, user, 0));
        Assert.Equal(user << 12, g.V.GuestTableUser);
        Assert.Equal(FrameType.L4PageTable, g.Type(user));
        Assert.Equal(1u, g.TypeCount(user));
        Assert.Empty(g.T.Host.LoadedPageTableBases);       // user tables are loaded on the switch to user mode
        Assert.Equal(0, Call(g, Xen.MMUEXT_NEW_USER_BASEPTR, 0, 0));
        Assert.Equal(0UL, g.V.GuestTableUser);
        Assert.Equal(0u, g.TypeCount(user));
    }

    [Fact]
    public void FlushesReachTheHost()
    {
        var g = new MmGuest();
        g.Arg(0x800, 1);                                    // a vCPU mask for the MULTI forms
        Assert.Equal(0, Call(g,
            Xen.MMUEXT_TLB_FLUSH_LOCAL, 0, 0,
            Xen.MMUEXT_INVLPG_LOCAL, 0x1234_5000, 0,
            Xen.MMUEXT_TLB_FLUSH_MULTI, 0, Va(ArgsSlot) + 0x800,
            Xen.MMUEXT_INVLPG_MULTI, 0x5000, Va(ArgsSlot) + 0x800,
            Xen.MMUEXT_TLB_FLUSH_ALL, 0, 0,
            Xen.MMUEXT_INVLPG_ALL, 0x6000, 0));
        Assert.Equal(3, g.T.Host.TlbFlushes);
        Assert.Equal(new ulong[] { 0x1234_5000, 0x5000, 0x6000 }, g.T.Host.InvalidatedPages.ToArray());
        Assert.Equal(6u, g.ReadArg32(DoneOffset));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_TLB_FLUSH_MULTI, 0, 0x7000_0000));   // unreadable mask
    }

    [Fact]
    public void SetLdtChecksItsArguments()
    {
        var g = new MmGuest();
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_SET_LDT, 0x1000_0008, 16));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_SET_LDT, Xen.HYPERVISOR_VIRT_START, 16));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_SET_LDT, Xen.HYPERVISOR_VIRT_START - 0x1000, 8192));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_SET_LDT, 0x1000_0000, 8193));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_SET_LDT, 0x0000_8000_0000_0000, 1));     // non-canonical
        Assert.Equal(0, Call(g, Xen.MMUEXT_SET_LDT, 0x1000_0000, 32));
        Assert.Equal(0x1000_0000UL, g.V.LdtBase);
        Assert.Equal(32UL, g.V.LdtEntries);
        Assert.Equal(0, Call(g, Xen.MMUEXT_SET_LDT, 0x1234, 0));                  // no entries: no LDT
        Assert.Equal(0UL, g.V.LdtBase);
    }

    [Fact]
    public void ClearAndCopyOnlyTouchFramesThatMayBeWritable()
    {
        var g = new MmGuest();
        g.Set(g.Data[0], 5, 0xAAAA);
        g.Set(g.Spare[0], 7, 0xBBBB);
        Assert.Equal(0, Call(g, Xen.MMUEXT_COPY_PAGE, g.Data[1], g.Spare[0]));
        Assert.Equal(0xBBBBUL, g.Get(g.Data[1], 7));
        Assert.Equal(0, Call(g, Xen.MMUEXT_CLEAR_PAGE, g.Data[0], 0));
        Assert.Equal(0UL, g.Get(g.Data[0], 5));
        Assert.Equal(1u, g.TypeCount(g.Data[0]));

        ulong l1e = g.Get(g.L1, 1);
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_CLEAR_PAGE, g.L1, 0));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_COPY_PAGE, g.L2, g.Spare[0]));
        Assert.Equal(l1e, g.Get(g.L1, 1));
        Assert.Equal(-Errno.EINVAL, Call(g, Xen.MMUEXT_CLEAR_PAGE, 3, 0));       // not ours
    }

    [Fact]
    public void UnknownAndForeignOperations()
    {
        var t = new TestMachine();
        var other = new MmGuest(t, id: 2);
        var g = new MmGuest(t, id: 1);
        Assert.Equal(-Errno.ENOSYS, Call(g, 14, 0, 0));
        Assert.Equal(-Errno.EOPNOTSUPP, Call(g, Xen.MMUEXT_MARK_SUPER, 0, 0));
        Assert.Equal(-Errno.EACCES, Call(g, Xen.MMUEXT_FLUSH_CACHE, 0, 0));
        Assert.Equal(-Errno.EFAULT, MmuExtOp.Do(g.V, 0x7000_0000, 1, 0, Xen.DOMID_SELF));
        Assert.Equal(-Errno.EPERM, MmuExtOp.Do(g.V, Va(ArgsSlot), 1, 0, 2));     // unprivileged, foreign
        Assert.Equal(0u, other.TypeCount(other.Spare[0]));
    }
}
