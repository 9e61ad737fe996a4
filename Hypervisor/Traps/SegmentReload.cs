using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// A vCPU's data-segment selectors across processors, as Xen 4.17's save_segments and load_segments
/// (arch/x86/domain.c): a guest loads DS, ES, FS and GS itself, without trapping, so when a vCPU leaves a
/// processor the kernel reads them (and the FS and GS bases a selector load may have changed) into the
/// vCPU, and when one comes back it gets its GDT and LDT first, then its selectors again. A selector the
/// CPU refuses then (its descriptor was made not present, its LDT changed or its page cannot be mapped)
/// is loaded as null and the guest is told through its failsafe callback, on its kernel stack, with the
/// selectors it had: { RCX, R11, DS, ES, FS, GS, RIP, CS, RFLAGS, RSP, SS }.
/// </summary>
public static class SegmentReload
{
    /// <summary>Bits of <see cref="HypervisorHost.LoadSegments"/>'s result: the selectors the CPU refused.</summary>
    public const int DsRefused = 1, EsRefused = 2, FsRefused = 4, GsRefused = 8;

    /// <summary>save_segments for <paramref name="v"/>, leaving this processor: its selectors, and its FS and
    /// active GS bases where the CPU holds them (not those set_segment_base or a change of guest mode in this
    /// very trap gave it, which the kernel has not loaded: SegmentBases).</summary>
    public static void Save(Vcpu v)
    {
        v.Domain.Machine.Host.SaveSegments(v);
        SegmentBases.Save(v);
    }

    /// <summary>load_segments for <paramref name="v"/>, switched to on this processor (<paramref name="regs"/> are
    /// its registers): its GDT and LDT, then its selectors; if the CPU refused one, the failsafe callback.</summary>
    public static void Load(Vcpu v, ref TrapFrame regs)
    {
        HypervisorHost host = v.Domain.Machine.Host;
        host.LoadGuestGdt(v);
        if (host.LoadSegments(v) != 0) Failsafe(v, ref regs);
    }

    /// <summary>The failsafe callback as load_segments enters it for a 64-bit PV vCPU: in kernel mode (a vCPU
    /// in user mode switches to it and its kernel stack), the frame below the 16-byte aligned stack pointer,
    /// the saved upcall mask in CS's bits 32+, RFLAGS.IF as !mask; events masked when the callback was
    /// registered so. A frame that cannot be written crashes the domain, as in Xen.</summary>
    public static void Failsafe(Vcpu v, ref TrapFrame regs)
    {
        Domain d = v.Domain;
        PhysicalMemory mem = d.Machine.Memory;
        ulong sp = (v.KernelMode ? regs.Rsp : v.KernelSp) & ~0xFUL;
        ulong info = VcpuInfo.Address(v);
        ulong mask = info == 0 ? 1UL : mem.Read8(info + SharedInfo.evtchn_upcall_mask);
        ulong rflags = regs.Rflags & ~(ArchX86.X86_EFLAGS_IF | ArchX86.X86_EFLAGS_IOPL);
        if (mask == 0) rflags |= ArchX86.X86_EFLAGS_IF;
        if ((d.VmAssist & (1UL << Xen.VMASST_TYPE_architectural_iopl)) != 0) rflags |= ((ulong)v.Iopl & 3) << 12;
        if (!v.KernelMode) TrapBounce.ToggleGuestMode(v);
        else regs.Cs &= ~3UL;
        ulong frame = sp - 11 * 8;
        bool ok = GuestMemory.WriteU64(v, frame, regs.Rcx) && GuestMemory.WriteU64(v, frame + 8, regs.R11)
            && GuestMemory.WriteU64(v, frame + 16, v.Ds) && GuestMemory.WriteU64(v, frame + 24, v.Es)
            && GuestMemory.WriteU64(v, frame + 32, v.Fs) && GuestMemory.WriteU64(v, frame + 40, v.Gs)
            && GuestMemory.WriteU64(v, frame + 48, regs.Rip) && GuestMemory.WriteU64(v, frame + 56, (regs.Cs & 0xFFFF) | (mask << 32))
            && GuestMemory.WriteU64(v, frame + 64, rflags) && GuestMemory.WriteU64(v, frame + 72, regs.Rsp)
            && GuestMemory.WriteU64(v, frame + 80, regs.Ss & 0xFFFF);
        if (!ok)
        {
            d.Crash("failsafe callback: fault writing the frame on the guest kernel stack");
            return;
        }
        if (v.FailsafeMasksEvents && info != 0) mem.Write8(info + SharedInfo.evtchn_upcall_mask, 1);
        regs.Rflags &= ~(ArchX86.X86_EFLAGS_AC | ArchX86.X86_EFLAGS_VM | ArchX86.X86_EFLAGS_RF | ArchX86.X86_EFLAGS_NT
            | ArchX86.X86_EFLAGS_IOPL | ArchX86.X86_EFLAGS_TF);
        regs.Ss = Xen.FLAT_KERNEL_SS64;
        regs.Rsp = frame;
        regs.Cs = Xen.FLAT_KERNEL_CS64;
        regs.Rip = v.FailsafeCallback;
    }
}
