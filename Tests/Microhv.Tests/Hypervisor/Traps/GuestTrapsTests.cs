using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>Guest exceptions: INT n, privileged-instruction emulation, forced-emulation CPUID, #PF, #NM.</summary>
public class GuestTrapsTests
{
    private const ulong Handler = 0xFFFF_FFFF_8100_0000;

    private static TrapFrame At(TrapsGuest g, int vector, ulong err, params byte[] code)
    {
        g.WriteBytes(TrapsGuest.Va(TrapsGuest.CodeSlot), code);
        var regs = g.KernelFrame();
        regs.Vector = (ulong)vector;
        regs.ErrorCode = err;
        return regs;
    }

    [Fact]
    public void IntNTakesTheVectorFromTheInstructionAndHonoursDpl()
    {
        var g = new TrapsGuest();
        g.Trap(0x80, Handler, flags: 3);
        g.Trap(13, Handler + 0x100);
        g.V.KernelMode = false;
        // QEMU's wrong code for INT 0x80 (n*16+2) must not matter.
        var regs = At(g, 13, 0x80 * 16 + 2, 0xCD, 0x80);
        regs.Rsp = TrapsGuest.UserStackTop - 0x10;
        ulong rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal(rip + 2, g.Read64(regs.Rsp + 16));           // software interrupt: returns after INT
        Assert.Equal(TrapsGuest.KernelStackTop - 56, regs.Rsp);   // no error code

        // DPL 0 vector from user mode: #GP with the IDT error code of the real vector.
        g = new TrapsGuest();
        g.Trap(0x81, Handler);
        g.Trap(13, Handler + 0x100);
        g.V.KernelMode = false;
        regs = At(g, 13, 0x81 * 16 + 2, 0xCD, 0x81);
        regs.Rsp = TrapsGuest.UserStackTop - 0x10;
        rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(Handler + 0x100, regs.Rip);
        Assert.Equal((0x81UL << 3) | 2, g.Read64(regs.Rsp + 16));
        Assert.Equal(rip, g.Read64(regs.Rsp + 24));               // fault: at the INT

        // DPL 1 is enough for the guest kernel (virtual ring 1), not for its user space.
        Assert.True(GuestTraps.PermitSoftint(1, new TrapsGuest().V));
        var u = new TrapsGuest(); u.V.KernelMode = false;
        Assert.False(GuestTraps.PermitSoftint(1, u.V));
        Assert.True(GuestTraps.PermitSoftint(3, u.V));
    }

    [Fact]
    public void ForcedEmulationCpuidReportsXenAndFiltersFeatures()
    {
        var g = new TrapsGuest();
        g.T.Host.CpuIdLeaves[1] = (0x806F8, 0x05000800, (1u << 5) | (1u << 0) | (1u << 21), (1u << 9) | (1u << 0));
        byte[] code = { 0x0F, 0x0B, 0x78, 0x65, 0x6E, 0x0F, 0xA2 };
        var regs = At(g, 6, 0, code);
        regs.Rax = 1;
        ulong rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(rip + 7, regs.Rip);
        Assert.Equal(0x806F8UL, regs.Rax);
        Assert.Equal(0UL, regs.Rcx & (1u << 5));                  // VMX hidden
        Assert.Equal(0UL, regs.Rcx & (1u << 21));                 // x2APIC hidden
        Assert.NotEqual(0UL, regs.Rcx & (1u << 31));              // hypervisor present
        Assert.NotEqual(0UL, regs.Rcx & 1);                       // SSE3 passes through
        Assert.NotEqual(0UL, regs.Rdx & (1u << 9));               // APIC passes through, as in Xen's PV policy
        Assert.Equal(0UL, regs.Rbx >> 24);                        // APIC ID of vCPU 0

        regs = At(g, 6, 0, code);
        regs.Rax = 0x40000000;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.True(regs.Rax >= 0x40000002);
        var sig = new byte[12];
        System.BitConverter.GetBytes((uint)regs.Rbx).CopyTo(sig, 0);
        System.BitConverter.GetBytes((uint)regs.Rcx).CopyTo(sig, 4);
        System.BitConverter.GetBytes((uint)regs.Rdx).CopyTo(sig, 8);
        Assert.Equal("XenVMMXenVMM", System.Text.Encoding.ASCII.GetString(sig));

        regs = At(g, 6, 0, code);
        regs.Rax = 0x40000001;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal((4UL << 16) | 17, regs.Rax);

        regs = At(g, 6, 0, code);
        regs.Rax = 0x40000002;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal((1UL, 0x40000000UL), (regs.Rax, regs.Rbx));

        // A plain ud2 is the guest's #UD.
        g.Trap(6, Handler);
        regs = At(g, 6, 0, 0x0F, 0x0B, 0x90);
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);
    }

    [Fact]
    public void RdmsrWrmsrOfSegmentBases()
    {
        var g = new TrapsGuest();
        // wrmsr GS_BASE = 0xffffffff82000000 (Linux's early GS setup)
        var regs = At(g, 13, 0, 0x0F, 0x30);
        regs.Rcx = 0xC0000101; regs.Rax = 0x82000000; regs.Rdx = 0xFFFFFFFF;
        ulong rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(rip + 2, regs.Rip);
        Assert.Equal(0xFFFF_FFFF_8200_0000UL, g.V.GsBaseKernel);

        g.V.FsBase = 0x7F00_1234_5000;
        regs = At(g, 13, 0, 0x0F, 0x32);
        regs.Rcx = 0xC0000100;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal((0x1234_5000UL, 0x7F00UL), (regs.Rax, regs.Rdx));

        // Non-canonical base: #GP to the guest, base unchanged.
        g.Trap(13, Handler);
        regs = At(g, 13, 0, 0x0F, 0x30);
        regs.Rcx = 0xC0000102; regs.Rax = 0; regs.Rdx = 0x8000_0000;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal(0UL, g.V.GsBaseUser);

        // From guest user mode, no MSR access.
        g = new TrapsGuest();
        g.Trap(13, Handler);
        g.V.KernelMode = false;
        regs = At(g, 13, 0, 0x0F, 0x32);
        regs.Rsp = TrapsGuest.UserStackTop - 0x10;
        regs.Rcx = 0xC0000100;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);
    }

    [Fact]
    public void ControlRegisters()
    {
        var g = new TrapsGuest();
        var regs = At(g, 13, 0, 0x0F, 0x20, 0xD8);                 // mov rax, cr3
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(g.L4 << 12, regs.Rax);

        regs = At(g, 13, 0, 0x41, 0x0F, 0x20, 0xC4);               // mov r12, cr0
        g.V.FpuTaskSwitched = true;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(0x80010033UL | 8, regs.R12);                  // PG WP NE ET MP PE + TS

        regs = At(g, 13, 0, 0x0F, 0x06);                           // clts
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.False(g.V.FpuTaskSwitched);

        g.T.Memory.Write64(g.VcpuInfo + SharedInfo.arch_cr2, 0xABC000);
        regs = At(g, 13, 0, 0x0F, 0x20, 0xD1);                     // mov rcx, cr2
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(0xABC000UL, regs.Rcx);
    }

    [Fact]
    public void HltBlocksUntilAnEventIsDeliverable()
    {
        var g = new TrapsGuest();
        var regs = At(g, 13, 0, 0xF4);
        ulong rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.True(g.V.Blocked);
        Assert.Equal(rip + 1, regs.Rip);

        g = new TrapsGuest();
        g.UpcallPending = 1; g.UpcallMask = 0;
        regs = At(g, 13, 0, 0xF4);
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.False(g.V.Blocked);
    }

    [Fact]
    public void PortIoNeedsIoplAndUngrantedPortsReadAllOnes()
    {
        var g = new TrapsGuest();
        g.Trap(13, Handler);
        var regs = At(g, 13, 0, 0xE4, 0x61);                       // in al, 0x61
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);                           // IOPL 0: #GP

        g = new TrapsGuest();
        g.V.Iopl = 1;                                              // physdev set_iopl(1): the kernel is virtual ring 1
        regs = At(g, 13, 0, 0xE4, 0x61);
        regs.Rax = 0x1234_5600;
        ulong rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(rip + 2, regs.Rip);
        Assert.Equal(0x1234_56FFUL, regs.Rax);

        regs = At(g, 13, 0, 0xED);                                 // in eax, dx
        regs.Rax = 0xFFFF_0000_0000_0000;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(0xFFFF_FFFFUL, regs.Rax);

        regs = At(g, 13, 0, 0xEE);                                 // out dx, al: dropped
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(DomainState.Running, g.D.State);

        var u = new TrapsGuest();
        u.Trap(13, Handler);
        u.V.Iopl = 1;
        u.V.KernelMode = false;                                    // user space needs IOPL 3
        regs = At(u, 13, 0, 0xE4, 0x61);
        regs.Rsp = TrapsGuest.UserStackTop - 0x10;
        GuestTraps.HandleException(u.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);
    }

    [Fact]
    public void CliAndStiAreNoOpsUnderIoplAndLeaveTheEventMaskAlone()
    {
        var g = new TrapsGuest();
        g.Trap(13, Handler);
        var regs = At(g, 13, 0, 0xFA);                              // cli at IOPL 0: #GP
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);

        g = new TrapsGuest();
        g.Trap(13, Handler);
        g.V.Iopl = 1;                                              // Linux's physdev set_iopl(1)
        byte mask = g.UpcallMask;
        regs = At(g, 13, 0, 0xFA);
        ulong rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(rip + 1, regs.Rip);
        Assert.Equal(mask, g.UpcallMask);                          // Xen's validate() returns DONE without touching it
        regs = At(g, 13, 0, 0xFB);                                 // sti
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(rip + 1, regs.Rip);
        Assert.Equal(mask, g.UpcallMask);

        var u = new TrapsGuest();
        u.Trap(13, Handler);
        u.V.Iopl = 1;
        u.V.KernelMode = false;                                    // user space is ring 3: needs IOPL 3
        regs = At(u, 13, 0, 0xFA);
        regs.Rsp = TrapsGuest.UserStackTop - 0x10;
        GuestTraps.HandleException(u.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);
    }

    [Fact]
    public void PageFaultsAreBouncedWithCr2OrRetriedWhenSpurious()
    {
        var g = new TrapsGuest();
        g.Trap(14, Handler);
        var regs = At(g, 14, 0x6, 0x90);                            // write to a not-present page
        GuestTraps.HandleException(g.V, ref regs, 0x7000_0000);
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal(0x7000_0000UL, g.Cr2);
        Assert.Equal(0x2UL, g.Read64(regs.Rsp + 16));              // kernel mode: user bit cleared

        // The tables already allow the write: a stale TLB entry, flushed and retried.
        g = new TrapsGuest();
        g.Trap(14, Handler);
        regs = At(g, 14, 0x7, 0x90);
        ulong rip = regs.Rip;
        ulong va = TrapsGuest.Va(TrapsGuest.ArgsSlot) + 0x10;
        GuestTraps.HandleException(g.V, ref regs, va);
        Assert.Equal(rip, regs.Rip);
        Assert.Contains(va, g.T.Host.InvalidatedPages);
    }

    [Fact]
    public void AMulticallOfZeroEntriesClearsTheTrapTableSoALaterNmIsTheGuestsOwnFatalFault()
    {
        // Issue 14's "#NM charged to the guest right after multicall(list=0x10, nr_calls=0xfffffffe)",
        // reproduced by the fuzzer (seed 1, call 605: a list in its own zero-filled memory, then
        // fpu_taskswitch(1)): entries of zeros are set_trap_table(NULL), which clears the table as in
        // Xen, so the guest's next FPU instruction raises an #NM it has no handler for. Xen kills
        // the domain the same way; an #NM raised by the hypervisor itself is FATAL, never the guest's.
        var g = new TrapsGuest();
        g.Trap(7, Handler);
        ulong list = TrapsGuest.Va(TrapsGuest.ArgsSlot);
        g.Write64(list, 5); g.Write64(list + 16, 1);                // fpu_taskswitch(1)
        for (ulong i = 64; i < 128; i += 8) g.Write64(list + i, 0); // set_trap_table(NULL)
        TrapFrame mc = g.KernelFrame();
        Assert.Equal(0, Multicall.Do(g.V, ref mc, list, 2));
        Assert.True(g.V.FpuTaskSwitched);
        Assert.Equal(0UL, g.V.TrapTable[7].Address);
        var regs = At(g, 7, 0, 0x0F, 0x28, 0xC1);                   // movaps xmm0, xmm1
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(DomainState.Crashed, g.D.State);
        Assert.Equal("fatal #NM (vector 7): no guest handler", g.D.CrashReason);
    }

    [Fact]
    public void DeviceNotAvailableIsBouncedOnceWhenTheGuestSetTs()
    {
        var g = new TrapsGuest();
        g.Trap(7, Handler);
        Assert.Equal(0, FpuTaskswitch.Do(g.V, 1));
        var regs = At(g, 7, 0, 0x90);
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);
        Assert.False(g.V.FpuTaskSwitched);

        regs = At(g, 7, 0, 0x90);
        ulong rip = regs.Rip;
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(rip, regs.Rip);                                // virtual TS clear: nothing for the guest
    }

    [Fact]
    public void UnhandledExceptionCrashesTheDomain()
    {
        var g = new TrapsGuest();
        var regs = At(g, 0, 0, 0x90);
        GuestTraps.HandleException(g.V, ref regs, 0);
        Assert.Equal(DomainState.Crashed, g.D.State);
        Assert.Contains("#DE", g.D.CrashReason);
    }
}
