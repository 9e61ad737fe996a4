using Microhv.HAL;
using Microhv.Hypervisor.Traps;
using Microhv.Hypervisor.Public;
using Ctx = Microhv.Hypervisor.Public.VcpuGuestContext;

namespace Microhv.Hypervisor.Toolstack;

/// <summary>
/// domctl setvcpucontext / getvcpucontext for a PV vCPU (Xen's arch_set_info_guest and
/// arch_get_info_guest): the registers, trap table, callbacks, segment bases, kernel stack, LDT, GDT
/// and page-table bases libxenguest's builder gives the new domain's vCPU before it is unpaused.
/// Checked as Xen checks them: canonical addresses, the LDT's alignment and size, the GDT's frame
/// count, the vm_assist bits, the L4 (and user L4) taking a page-table type reference; then the vCPU
/// is online or not as VGCF_online says. VCPUOP_initialise gives a guest's own secondary vCPU its
/// first context through the same checks (<see cref="Apply"/>). CS and SS are Xen's flat ring-3 selectors
/// or selectors of the vCPU's own GDT whose descriptors are present and fit (checked here, where Xen
/// leaves it to the CPU at the first return); the debug registers are set as set_debugreg sets them, a
/// refused one ignored, as in Xen; an FPU image (VGCF_i387_valid) is not taken yet (-EOPNOTSUPP).
/// </summary>
public static class VcpuContext
{
    public static long Set(Vcpu caller, Domain d, ulong arg)
    {
        if (!GuestMemory.ReadU32(caller, arg + Public.Domctl.vcpucontext_vcpu, out uint vcpu)
            || !GuestMemory.ReadU64(caller, arg + Public.Domctl.vcpucontext_ctxt, out ulong c))
            return -Errno.EFAULT;
        if (d == caller.Domain || vcpu >= (uint)d.MaxVcpus) return -Errno.EINVAL;
        Vcpu v = d.Vcpus[vcpu];
        VcpuPause.PauseDomain(d);                       // Xen's domain_pause: none of its vCPUs on a processor
        long rc = c == 0 ? Reset(v) : Apply(caller, v, c);
        VcpuPause.UnpauseDomain(d);
        return rc;
    }

    /// <summary>Xen's arch_set_info_guest for a 64-bit PV vCPU: the context at <paramref name="c"/> in
    /// <paramref name="caller"/>'s address space, checked, then taken by <paramref name="v"/>.</summary>
    public static long Apply(Vcpu caller, Vcpu v, ulong c)
    {
        Domain d = v.Domain;
        ulong u = c + Ctx.user_regs;
        if (!GuestMemory.ReadU64(caller, c + Ctx.flags, out ulong flags)
            || !GuestMemory.ReadU64(caller, u + Ctx.rip, out ulong rip)
            || !GuestMemory.ReadU64(caller, u + Ctx.rsp, out ulong rsp)
            || !GuestMemory.ReadU16(caller, u + Ctx.cs, out ushort cs)
            || !GuestMemory.ReadU16(caller, u + Ctx.ss, out ushort ss)
            || !GuestMemory.ReadU16(caller, u + Ctx.ds, out ushort ds) || !GuestMemory.ReadU16(caller, u + Ctx.es, out ushort es)
            || !GuestMemory.ReadU16(caller, u + Ctx.fs, out ushort fs) || !GuestMemory.ReadU16(caller, u + Ctx.gs, out ushort gs)
            || !GuestMemory.ReadU64(caller, u + Ctx.rflags, out ulong rflags)
            || !GuestMemory.ReadU64(caller, c + Ctx.kernel_sp, out ulong kernelSp)
            || !GuestMemory.ReadU64(caller, c + Ctx.kernel_ss, out ulong kernelSs)
            || !GuestMemory.ReadU64(caller, c + Ctx.ldt_base, out ulong ldtBase)
            || !GuestMemory.ReadU64(caller, c + Ctx.ldt_ents, out ulong ldtEnts)
            || !GuestMemory.ReadU64(caller, c + Ctx.gdt_ents, out ulong gdtEnts)
            || !GuestMemory.ReadU64(caller, c + Ctx.fs_base, out ulong fsBase)
            || !GuestMemory.ReadU64(caller, c + Ctx.gs_base_kernel, out ulong gsKernel)
            || !GuestMemory.ReadU64(caller, c + Ctx.gs_base_user, out ulong gsUser)
            || !GuestMemory.ReadU64(caller, c + Ctx.event_callback_eip, out ulong eventCb)
            || !GuestMemory.ReadU64(caller, c + Ctx.failsafe_callback_eip, out ulong failsafeCb)
            || !GuestMemory.ReadU64(caller, c + Ctx.syscall_callback_eip, out ulong syscallCb)
            || !GuestMemory.ReadU64(caller, c + Ctx.vm_assist, out ulong vmAssist)
            || !GuestMemory.ReadU64(caller, c + Ctx.ctrlreg + 0 * 8, out ulong cr0)
            || !GuestMemory.ReadU64(caller, c + Ctx.ctrlreg + 1 * 8, out ulong userCr3)
            || !GuestMemory.ReadU64(caller, c + Ctx.ctrlreg + 3 * 8, out ulong cr3))
            return -Errno.EFAULT;

        // Xen's order: canonical addresses, trap table entries, the LDT, vm_assist, the GDT size.
        if (!IsCanonical(rip) || !IsCanonical(rsp) || !IsCanonical(kernelSp) || ldtEnts != 0 && !IsCanonical(ldtBase)
            || !IsCanonical(fsBase) || !IsCanonical(gsKernel) || !IsCanonical(gsUser)
            || !IsCanonical(eventCb) || !IsCanonical(syscallCb) || !IsCanonical(failsafeCb))
            return -Errno.EINVAL;
        for (int i = 0; i < Ctx.trap_count; i++)
        {
            if (!GuestMemory.ReadU64(caller, c + Ctx.trap_ctxt + (ulong)(i * Ctx.trap_info_size) + Ctx.trap_address, out ulong a))
                return -Errno.EFAULT;
            if (!IsCanonical(a)) return -Errno.EINVAL;
        }
        if (Layout.InHypervisorHole(ldtBase)) return -Errno.EINVAL;                      // __addr_ok
        if ((ldtBase & (Layout.PageSize - 1)) != 0 || ldtEnts > Ctx.ldt_max_entries) return -Errno.EINVAL;
        if (v.Id == 0 && (vmAssist & ~Mm.VmAssist.Valid) != 0) return -Errno.EINVAL;
        int gdtFrames = (int)((gdtEnts + SetGdt.EntriesPerFrame - 1) / SetGdt.EntriesPerFrame);
        if (gdtEnts > ArchX86.FIRST_RESERVED_GDT_ENTRY || gdtFrames > ArchX86.FIRST_RESERVED_GDT_PAGE) return -Errno.EINVAL;
        bool inKernel = (flags & ArchX86.VGCF_in_kernel) != 0;

        // What Microhv does not take (yet): an FPU image.
        if ((flags & ArchX86.VGCF_i387_valid) != 0) return -Errno.EOPNOTSUPP;
        if (!GuestMemory.ReadU64(caller, c + Ctx.debugreg + 0 * 8, out ulong dr0) || !GuestMemory.ReadU64(caller, c + Ctx.debugreg + 1 * 8, out ulong dr1)
            || !GuestMemory.ReadU64(caller, c + Ctx.debugreg + 2 * 8, out ulong dr2) || !GuestMemory.ReadU64(caller, c + Ctx.debugreg + 3 * 8, out ulong dr3)
            || !GuestMemory.ReadU64(caller, c + Ctx.debugreg + 6 * 8, out ulong dr6) || !GuestMemory.ReadU64(caller, c + Ctx.debugreg + 7 * 8, out ulong dr7))
            return -Errno.EFAULT;
        cs = FixupSelector(cs);
        ss = FixupSelector(ss);

        Machine m = d.Machine;
        ulong cr3Mfn = cr3 >> Layout.PageShift, userMfn = userCr3 >> Layout.PageShift;
        if (v.Initialised)
        {
            // An initialised vCPU keeps its page tables, GDT and LDT (Xen: -EOPNOTSUPP otherwise).
            bool fail = v.GuestTable != (cr3Mfn << Layout.PageShift)
                || (v.GuestTableUser == 0 ? userCr3 != 0 || !inKernel : v.GuestTableUser != (userMfn << Layout.PageShift))
                || (ulong)v.GdtEntries != gdtEnts || v.LdtEntries != ldtEnts || ldtEnts != 0 && v.LdtBase != ldtBase;
            for (int i = 0; !fail && i < gdtFrames; i++)
            {
                if (!GuestMemory.ReadU64(caller, c + Ctx.gdt_frames + (ulong)i * 8, out ulong f)) return -Errno.EFAULT;
                fail = v.GdtFrames[i] != f;
            }
            if (fail) return -Errno.EOPNOTSUPP;
            if (!SelectorsOkay(m, v, cs, ss)) return -Errno.EINVAL;
        }
        else
        {
            if (!inKernel && userCr3 == 0) return -Errno.EINVAL;
            // pv_set_gdt, then the kernel L4 and the user L4 each take a root page-table type reference.
            ulong[] frames = Frames;
            for (int i = 0; i < gdtFrames; i++)
                if (!GuestMemory.ReadU64(caller, c + Ctx.gdt_frames + (ulong)i * 8, out frames[i])) return -Errno.EFAULT;
            if (!d.OwnsFrame(cr3Mfn)) return -Errno.EINVAL;
            if (userCr3 != 0 && !d.OwnsFrame(userMfn)) return -Errno.EINVAL;
            long rc = SetGdt.Set(v, frames, gdtFrames, (int)gdtEnts);
            if (rc != 0) return rc;
            if (!SelectorsOkay(m, v, cs, ss))
            {
                SetGdt.Destroy(v);
                return -Errno.EINVAL;
            }
            rc = Mm.PageTypes.GetPageAndType(m, d, cr3Mfn, FrameType.L4PageTable);
            if (rc != 0)
            {
                SetGdt.Destroy(v);
                return -Errno.EINVAL;
            }
            if (userCr3 != 0)
            {
                rc = Mm.PageTypes.GetPageAndType(m, d, userMfn, FrameType.L4PageTable);
                if (rc != 0)
                {
                    Mm.PageTypes.PutPageAndType(m, cr3Mfn);
                    SetGdt.Destroy(v);
                    return -Errno.EINVAL;
                }
            }
            v.GuestTable = cr3Mfn << Layout.PageShift;
            v.GuestTableUser = userCr3 == 0 ? 0 : userMfn << Layout.PageShift;
            v.LdtBase = ldtBase;
            v.LdtEntries = ldtEnts;
            if (v.Id == 0) d.VmAssist = vmAssist;                       // the domain's vm_assist comes with vCPU 0's context
        }

        // Everything checked: the vCPU takes the context.
        TrapFrame r = default;
        if (!GuestMemory.ReadU64(caller, u + Ctx.r15, out r.R15) || !GuestMemory.ReadU64(caller, u + Ctx.r14, out r.R14)
            || !GuestMemory.ReadU64(caller, u + Ctx.r13, out r.R13) || !GuestMemory.ReadU64(caller, u + Ctx.r12, out r.R12)
            || !GuestMemory.ReadU64(caller, u + Ctx.rbp, out r.Rbp) || !GuestMemory.ReadU64(caller, u + Ctx.rbx, out r.Rbx)
            || !GuestMemory.ReadU64(caller, u + Ctx.r11, out r.R11) || !GuestMemory.ReadU64(caller, u + Ctx.r10, out r.R10)
            || !GuestMemory.ReadU64(caller, u + Ctx.r9, out r.R9) || !GuestMemory.ReadU64(caller, u + Ctx.r8, out r.R8)
            || !GuestMemory.ReadU64(caller, u + Ctx.rax, out r.Rax) || !GuestMemory.ReadU64(caller, u + Ctx.rcx, out r.Rcx)
            || !GuestMemory.ReadU64(caller, u + Ctx.rdx, out r.Rdx) || !GuestMemory.ReadU64(caller, u + Ctx.rsi, out r.Rsi)
            || !GuestMemory.ReadU64(caller, u + Ctx.rdi, out r.Rdi))
            return -Errno.EFAULT;
        for (int i = 0; i < Ctx.trap_count; i++)
        {
            ulong t = c + Ctx.trap_ctxt + (ulong)(i * Ctx.trap_info_size);
            if (!GuestMemory.ReadU8(caller, t + Ctx.trap_vector, out byte vec) || !GuestMemory.ReadU8(caller, t + Ctx.trap_flags, out byte tf)
                || !GuestMemory.ReadU16(caller, t + Ctx.trap_cs, out ushort tcs) || !GuestMemory.ReadU64(caller, t + Ctx.trap_address, out ulong ta))
                return -Errno.EFAULT;
            v.TrapTable[i] = new TrapInfo { Vector = vec, Flags = tf, Cs = FixupSelector(tcs), Address = ta };
        }
        r.Rip = rip;
        r.Rsp = rsp;
        r.Cs = cs;
        r.Ss = ss;
        v.Iopl = (int)((rflags >> 12) & 3);
        r.Rflags = (rflags & ~0x3000UL) | 0x202;        // IOPL virtualised, IF always set
        v.Regs = r;
        v.KernelMode = inKernel;
        v.KernelSs = FixupSelector((ushort)kernelSs);
        v.KernelSp = kernelSp;
        v.EventCallback = eventCb;
        v.FailsafeCallback = failsafeCb;
        v.SyscallCallback = syscallCb;
        v.SyscallMasksEvents = (flags & ArchX86.VGCF_syscall_disables_events) != 0;
        v.FailsafeMasksEvents = (flags & ArchX86.VGCF_failsafe_disables_events) != 0;
        v.Ds = ds; v.Es = es; v.Fs = fs; v.Gs = gs;          // loaded when it runs (SegmentReload), as Xen's user_regs
        v.FsBase = fsBase;
        v.GsBaseKernel = gsKernel;
        v.GsBaseUser = gsUser;
        v.FpuTaskSwitched = (cr0 & 8) != 0;
        // Xen: the debug registers are reset, then each is set as set_debugreg would, a refused value ignored.
        v.Debug = DebugRegisterState.Reset;
        DebugRegisters.Set(v, 0, dr0);
        DebugRegisters.Set(v, 1, dr1);
        DebugRegisters.Set(v, 2, dr2);
        DebugRegisters.Set(v, 3, dr3);
        DebugRegisters.Set(v, 6, dr6);
        DebugRegisters.Set(v, 7, dr7);
        v.Online = (flags & ArchX86.VGCF_online) != 0;
        v.Initialised = true;
        TimeInfo.UpdateWallclock(d);
        return 0;
    }

    /// <summary>The context's CS and SS, in the GDT the vCPU now has (DescriptorCheck.ContextSelectorOkay).</summary>
    private static bool SelectorsOkay(Machine m, Vcpu v, ushort cs, ushort ss)
        => DescriptorCheck.ContextSelectorOkay(m.Memory, v.GdtFrames, v.GdtEntries, cs, true)
            && DescriptorCheck.ContextSelectorOkay(m.Memory, v.GdtFrames, v.GdtEntries, ss, false);

    /// <summary>A null context: the vCPU goes down and drops its page-table and GDT references (vcpu_reset).</summary>
    private static long Reset(Vcpu v)
    {
        Machine m = v.Domain.Machine;
        if (v.GuestTable != 0) Mm.PageTypes.PutPageAndType(m, v.GuestTable >> Layout.PageShift);
        if (v.GuestTableUser != 0) Mm.PageTypes.PutPageAndType(m, v.GuestTableUser >> Layout.PageShift);
        v.GuestTable = v.GuestTableUser = 0;
        SetGdt.Destroy(v);
        if (Mm.LdtShadow.Destroy(v)) m.Host.FlushTlb();
        v.LdtBase = v.LdtEntries = 0;
        v.Online = false;
        v.Initialised = false;
        return 0;
    }

    /// <summary>getvcpucontext: the context as setvcpucontext takes it, read while the vCPU is paused and off every
    /// processor (Xen's vcpu_pause); as in Xen, the calling vCPU itself is -EINVAL (it cannot be paused), another vCPU
    /// of the caller's own domain may be read, and a vCPU never initialised is -ENODATA.</summary>
    public static long Get(Vcpu caller, Domain d, ulong arg)
    {
        if (!GuestMemory.ReadU32(caller, arg + Public.Domctl.vcpucontext_vcpu, out uint vcpu)
            || !GuestMemory.ReadU64(caller, arg + Public.Domctl.vcpucontext_ctxt, out ulong c))
            return -Errno.EFAULT;
        if (vcpu >= (uint)d.MaxVcpus || d.Vcpus[vcpu] == caller) return -Errno.EINVAL;
        Vcpu v = d.Vcpus[vcpu];
        if (!v.Initialised) return -Errno.ENODATA;
        VcpuPause.Pause(v);                             // Xen's vcpu_pause: its registers and bases as it left its processor
        long rc = Write(caller, v, c);
        VcpuPause.Unpause(v);
        return rc;
    }

    private static long Write(Vcpu caller, Vcpu v, ulong c)
    {
        Domain d = v.Domain;
        for (int i = 0; i < Ctx.size; i += 8)
            if (!GuestMemory.WriteU64(caller, c + (ulong)i, 0)) return -Errno.EFAULT;
        ulong flags = (v.KernelMode ? ArchX86.VGCF_in_kernel : 0) | (v.Online ? ArchX86.VGCF_online : 0)
            | (v.SyscallMasksEvents ? ArchX86.VGCF_syscall_disables_events : 0)
            | (v.FailsafeMasksEvents ? ArchX86.VGCF_failsafe_disables_events : 0);
        ulong u = c + Ctx.user_regs;
        TrapFrame r = v.Regs;
        bool ok = GuestMemory.WriteU64(caller, c + Ctx.flags, flags)
            && GuestMemory.WriteU64(caller, u + Ctx.r15, r.R15) && GuestMemory.WriteU64(caller, u + Ctx.r14, r.R14)
            && GuestMemory.WriteU64(caller, u + Ctx.r13, r.R13) && GuestMemory.WriteU64(caller, u + Ctx.r12, r.R12)
            && GuestMemory.WriteU64(caller, u + Ctx.rbp, r.Rbp) && GuestMemory.WriteU64(caller, u + Ctx.rbx, r.Rbx)
            && GuestMemory.WriteU64(caller, u + Ctx.r11, r.R11) && GuestMemory.WriteU64(caller, u + Ctx.r10, r.R10)
            && GuestMemory.WriteU64(caller, u + Ctx.r9, r.R9) && GuestMemory.WriteU64(caller, u + Ctx.r8, r.R8)
            && GuestMemory.WriteU64(caller, u + Ctx.rax, r.Rax) && GuestMemory.WriteU64(caller, u + Ctx.rcx, r.Rcx)
            && GuestMemory.WriteU64(caller, u + Ctx.rdx, r.Rdx) && GuestMemory.WriteU64(caller, u + Ctx.rsi, r.Rsi)
            && GuestMemory.WriteU64(caller, u + Ctx.rdi, r.Rdi) && GuestMemory.WriteU64(caller, u + Ctx.rip, r.Rip)
            && GuestMemory.WriteU16(caller, u + Ctx.cs, (ushort)r.Cs)
            && GuestMemory.WriteU64(caller, u + Ctx.rflags, r.Rflags | ((ulong)v.Iopl << 12))
            && GuestMemory.WriteU64(caller, u + Ctx.rsp, r.Rsp) && GuestMemory.WriteU16(caller, u + Ctx.ss, (ushort)r.Ss)
            && GuestMemory.WriteU16(caller, u + Ctx.ds, v.Ds) && GuestMemory.WriteU16(caller, u + Ctx.es, v.Es)
            && GuestMemory.WriteU16(caller, u + Ctx.fs, v.Fs) && GuestMemory.WriteU16(caller, u + Ctx.gs, v.Gs)
            && GuestMemory.WriteU64(caller, c + Ctx.ldt_base, v.LdtBase) && GuestMemory.WriteU64(caller, c + Ctx.ldt_ents, v.LdtEntries)
            && GuestMemory.WriteU64(caller, c + Ctx.gdt_ents, (ulong)v.GdtEntries)
            && GuestMemory.WriteU64(caller, c + Ctx.kernel_ss, v.KernelSs) && GuestMemory.WriteU64(caller, c + Ctx.kernel_sp, v.KernelSp)
            && GuestMemory.WriteU64(caller, c + Ctx.ctrlreg + 0, v.FpuTaskSwitched ? 8UL : 0)
            && GuestMemory.WriteU64(caller, c + Ctx.ctrlreg + 8, v.GuestTableUser)
            && GuestMemory.WriteU64(caller, c + Ctx.ctrlreg + 24, v.GuestTable)
            && GuestMemory.WriteU64(caller, c + Ctx.debugreg, v.Debug.Dr0) && GuestMemory.WriteU64(caller, c + Ctx.debugreg + 8, v.Debug.Dr1)
            && GuestMemory.WriteU64(caller, c + Ctx.debugreg + 16, v.Debug.Dr2) && GuestMemory.WriteU64(caller, c + Ctx.debugreg + 24, v.Debug.Dr3)
            && GuestMemory.WriteU64(caller, c + Ctx.debugreg + 48, v.Debug.Dr6) && GuestMemory.WriteU64(caller, c + Ctx.debugreg + 56, v.Debug.Dr7)
            && GuestMemory.WriteU64(caller, c + Ctx.event_callback_eip, v.EventCallback)
            && GuestMemory.WriteU64(caller, c + Ctx.failsafe_callback_eip, v.FailsafeCallback)
            && GuestMemory.WriteU64(caller, c + Ctx.syscall_callback_eip, v.SyscallCallback)
            && GuestMemory.WriteU64(caller, c + Ctx.vm_assist, d.VmAssist)
            && GuestMemory.WriteU64(caller, c + Ctx.fs_base, v.FsBase)
            && GuestMemory.WriteU64(caller, c + Ctx.gs_base_kernel, v.GsBaseKernel)
            && GuestMemory.WriteU64(caller, c + Ctx.gs_base_user, v.GsBaseUser);
        for (int i = 0; ok && i < v.GdtEntries / SetGdt.EntriesPerFrame + (v.GdtEntries % SetGdt.EntriesPerFrame != 0 ? 1 : 0); i++)
            ok = GuestMemory.WriteU64(caller, c + Ctx.gdt_frames + (ulong)i * 8, v.GdtFrames[i]);
        for (int i = 0; ok && i < Ctx.trap_count; i++)
        {
            ulong t = c + Ctx.trap_ctxt + (ulong)(i * Ctx.trap_info_size);
            TrapInfo ti = v.TrapTable[i];
            ok = GuestMemory.WriteU8(caller, t + Ctx.trap_vector, ti.Vector) && GuestMemory.WriteU8(caller, t + Ctx.trap_flags, ti.Flags)
                && GuestMemory.WriteU16(caller, t + Ctx.trap_cs, ti.Cs) && GuestMemory.WriteU64(caller, t + Ctx.trap_address, ti.Address);
        }
        return ok ? 0 : -Errno.EFAULT;
    }

    /// <summary>fixup_guest_{code,stack}_selector for a 64-bit PV guest: a ring-0 selector becomes ring 3,
    /// where the guest kernel runs.</summary>
    public static ushort FixupSelector(ushort sel) => (sel & 3) == 0 && sel != 0 ? (ushort)(sel | 3) : sel;

    private static bool IsCanonical(ulong va) => PageTableEntry.IsCanonical(va);

    /// <summary>GDT frames of the call being checked (hypercalls allocate nothing; one CPU runs them).</summary>
    private static readonly ulong[] Frames = new ulong[ArchX86.FIRST_RESERVED_GDT_PAGE];
}
