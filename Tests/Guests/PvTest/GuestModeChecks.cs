namespace Microhv.Guests.PvTest;

/// <summary>
/// Guest user mode and the segment bases across changes of guest mode, as Xen 4.17's toggle_guest_mode keeps
/// them: the GS base of the mode being left is read back from the CPU (so a base user space gave itself by
/// loading GS, or the kernel by WRGSBASE, is the one that comes back), the FS base is left as it is. User mode
/// is our own code and page tables (NEW_USER_BASEPTR of our L4) entered with HYPERVISOR_iret and left with
/// SYSCALL into our syscall callback (Common/guest.asm guest_user_call).
/// </summary>
internal static unsafe class GuestModeChecks
{
    public static void Run()
    {
        Checks.Run("guest_mode_change_keeps_segment_bases", &SegmentBases);
        Checks.Run("set_segment_base_gs_user_sel_loads_gs", &GsUserSel);
    }

    private const ulong FsSelectorBase = 0x0034_5000, GsSelectorBase = 0x0067_8000;
    private const ushort FsSelector = 0x0B, GsSelector = 0x13;    // our GDT's entries 1 and 2, RPL 3
    private const ulong KernelGs = 0x0000_5555_0000_0000, UserGs = 0x0000_4444_0000_0000;
    private const ulong Cr4Fsgsbase = 1UL << 16;
    private const ulong LoadSelectors = 1, WriteGsBase = 2, ReadGsBase = 4;

    private static byte* s_gdt, s_userStack, s_syscallStack;

    /// <summary>A DPL-3 writable data descriptor with a 32-bit base.</summary>
    private static ulong Data(ulong b)
        => 0x00CF_F200_0000_FFFFUL | ((b & 0xFF_FFFF) << 16) | ((b >> 24) << 56);

    private static void SegmentBases() => WithOurGdt(&Rounds);
    private static void GsUserSel() => WithOurGdt(&LoadUserGsSelector);

    /// <summary>Runs <paramref name="body"/> with our GDT (entries 1 and 2: data segments with bases), user page
    /// tables and a syscall callback, the kernel's and user's GS bases set to ours; puts everything back after.</summary>
    private static void WithOurGdt(delegate*<void> body)
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        if (s_gdt == null)
        {
            s_gdt = (byte*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
            s_userStack = (byte*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
            s_syscallStack = (byte*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
        }
        ulong* gdt = (ulong*)s_gdt;
        for (int i = 0; i < 512; i++) gdt[i] = 0;
        gdt[1] = Data(FsSelectorBase);
        gdt[2] = Data(GsSelectorBase);
        ushort* saved = stackalloc ushort[4];
        Cpu.ReadSelectors(saved);
        ulong fsBase = Cpu.Rdmsr(Xen.MSR_FS_BASE), gsKernel = Cpu.Rdmsr(Xen.MSR_GS_BASE), gsUser = Cpu.Rdmsr(Xen.MSR_SHADOW_GS_BASE);
        byte mask = Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_mask);
        ulong l4 = *(ulong*)(Guest.StartInfo + Xen.SI_pt_base);
        ulong* cb = stackalloc ulong[2];
        cb[0] = Xen.CALLBACKTYPE_syscall;
        cb[1] = Cpu.Symbol(Cpu.SymUserSyscallEntry);
        ulong* frames = stackalloc ulong[1];
        frames[0] = Guest.MfnOf(s_gdt);
        if (!Checks.Expect("register the syscall callback", Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)cb), 0)
            || !Checks.Expect("stack_switch", Hypercall.Call2(Xen.stack_switch, Xen.FLAT_KERNEL_SS, (ulong)s_syscallStack + 4096), 0)
            || !Checks.Expect("new_user_baseptr(our L4)", Hypercall.MmuextOp(Xen.MMUEXT_NEW_USER_BASEPTR, Guest.MfnOf((void*)l4), 0), 0)
            || !Checks.Expect("make the GDT page read-only", Guest.MakeReadOnly(s_gdt), 0))
            return;
        if (Checks.Expect("set_gdt with 3 entries", Hypercall.Call2(Xen.set_gdt, (ulong)frames, 3), 0)
            && Checks.Expect("set_segment_base(GS_KERNEL)", Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_GS_KERNEL, KernelGs), 0)
            && Checks.Expect("set_segment_base(GS_USER)", Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_GS_USER, UserGs), 0))
        {
            Traps.ExpectNone();
            body();
            ushort* none = stackalloc ushort[4];
            Cpu.LoadSelectors(none);
            Cpu.LoadSelectors(saved);
            Checks.Expect("set_gdt with no entries", Hypercall.Call2(Xen.set_gdt, (ulong)frames, 0), 0);
        }
        Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_FS, fsBase);
        Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_GS_KERNEL, gsKernel);
        Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_GS_USER, gsUser);
        Checks.Expect("new_user_baseptr(0)", Hypercall.MmuextOp(Xen.MMUEXT_NEW_USER_BASEPTR, 0, 0), 0);
        Checks.Expect("make the GDT page writable again", Guest.MakeWritable(s_gdt), 0);
        Events.SetUpcallMask(mask != 0);
    }

    private static ulong UserCall(ulong what, ulong gsBase = 0)
        => Cpu.UserCall(FsSelector, GsSelector, gsBase, what, (ulong)s_userStack + 4096);

    private static void Rounds()
    {
        // User space loads FS and GS with selectors whose descriptors have bases, and comes back by SYSCALL.
        UserCall(LoadSelectors);
        ushort* now = stackalloc ushort[4];
        Cpu.ReadSelectors(now);
        if (!Checks.ExpectHex("FS selector after user mode", now[2], FsSelector)
            || !Checks.ExpectHex("GS selector after user mode", now[3], GsSelector)
            || !Checks.ExpectHex("FS base the user's selector gave (left alone by the change of mode)", Cpu.Rdmsr(Xen.MSR_FS_BASE), FsSelectorBase)
            || !Checks.ExpectHex("user GS base the user's selector gave (read back at the change of mode)", Cpu.Rdmsr(Xen.MSR_SHADOW_GS_BASE), GsSelectorBase)
            || !Checks.ExpectHex("kernel GS base", Cpu.Rdmsr(Xen.MSR_GS_BASE), KernelGs))
            return;
        // Once more to user mode and back, changing nothing there: both survive two more changes of mode.
        UserCall(0);
        if (!Checks.ExpectHex("FS base after another round trip", Cpu.Rdmsr(Xen.MSR_FS_BASE), FsSelectorBase)
            || !Checks.ExpectHex("user GS base after another round trip", Cpu.Rdmsr(Xen.MSR_SHADOW_GS_BASE), GsSelectorBase)
            || !Checks.ExpectHex("kernel GS base after another round trip", Cpu.Rdmsr(Xen.MSR_GS_BASE), KernelGs))
            return;

        // With CR4.FSGSBASE, where the policy offers it: a GS base the kernel writes with WRGSBASE survives the trip.
        uint* r = stackalloc uint[4];
        Cpu.XenCpuid(0, 0, r);
        bool offered = false;
        if (r[0] >= 7) { Cpu.XenCpuid(7, 0, r); offered = (r[1] & 1) != 0; }
        if (!offered)
        {
            Checks.Differs("this CPU has no FSGSBASE: WRGSBASE across the changes of mode is not checked");
            return;
        }
        ulong cr4 = Cpu.ReadCr4();
        Cpu.WriteCr4(cr4 | Cr4Fsgsbase);
        const ulong kernelWritten = 0x0000_6666_0000_0000, userWritten = 0x0000_7777_0000_0000;
        Cpu.WrGsBase(kernelWritten);
        ulong seen = UserCall(ReadGsBase);
        ulong kernelBack = Cpu.RdGsBase();
        ulong userSeen = UserCall(WriteGsBase | ReadGsBase, userWritten);
        ulong kernelAgain = Cpu.RdGsBase(), shadow = Cpu.Rdmsr(Xen.MSR_SHADOW_GS_BASE);
        ulong userAgain = UserCall(ReadGsBase);
        Cpu.WriteCr4(cr4);
        if (Checks.ExpectHex("user mode's RDGSBASE (its own base)", seen, GsSelectorBase)
            && Checks.ExpectHex("kernel's RDGSBASE back from user mode (its WRGSBASE kept)", kernelBack, kernelWritten)
            && Checks.ExpectHex("user mode's RDGSBASE after its WRGSBASE", userSeen, userWritten)
            && Checks.ExpectHex("kernel's RDGSBASE after the user's WRGSBASE", kernelAgain, kernelWritten)
            && Checks.ExpectHex("user GS base (MSR_SHADOW_GS_BASE) after the user's WRGSBASE", shadow, userWritten))
            Checks.ExpectHex("user mode's RDGSBASE on its next visit", userAgain, userWritten);
    }

    /// <summary>set_segment_base(SEGBASE_GS_USER_SEL) loads the selector into GS (Xen's SWAPGS, load, read_gs_base,
    /// SWAPGS), so the selector reads back, the user GS base is the descriptor's and user mode runs with it; the
    /// kernel's GS base stays. A null selector: GS null, user GS base 0.</summary>
    private static void LoadUserGsSelector()
    {
        if (!Checks.Expect("set_segment_base(GS_USER_SEL, GDT entry 2 with RPL 0)", Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_GS_USER_SEL, GsSelector & ~3UL), 0))
            return;
        ushort* now = stackalloc ushort[4];
        Cpu.ReadSelectors(now);
        if (!Checks.ExpectHex("GS selector (RPL 3)", now[3], GsSelector)
            || !Checks.ExpectHex("user GS base", Cpu.Rdmsr(Xen.MSR_SHADOW_GS_BASE), GsSelectorBase)
            || !Checks.ExpectHex("kernel GS base", Cpu.Rdmsr(Xen.MSR_GS_BASE), KernelGs))
            return;
        UserCall(0);
        if (!Checks.ExpectHex("user GS base after user mode", Cpu.Rdmsr(Xen.MSR_SHADOW_GS_BASE), GsSelectorBase)
            || !Checks.ExpectHex("kernel GS base after user mode", Cpu.Rdmsr(Xen.MSR_GS_BASE), KernelGs)
            || !Checks.Expect("set_segment_base(GS_USER_SEL, 0)", Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_GS_USER_SEL, 0), 0))
            return;
        Cpu.ReadSelectors(now);
        Checks.ExpectHex("GS selector after the null one", now[3], 0);
        Checks.ExpectHex("user GS base after the null one", Cpu.Rdmsr(Xen.MSR_SHADOW_GS_BASE), 0);
    }
}
