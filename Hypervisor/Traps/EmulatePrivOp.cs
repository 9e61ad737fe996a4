using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Io;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

public enum PrivOpResult
{
    /// <summary>Not an instruction we emulate here, or not allowed: the caller bounces #GP.</summary>
    NotEmulated,
    /// <summary>Carried out; RIP is past the instruction.</summary>
    Emulated,
    /// <summary>Another exception was bounced to the guest (or the domain crashed) instead.</summary>
    Delivered,
}

/// <summary>
/// Xen's pv_emulate_privileged_op (pv/emul-priv-op.c): a 64-bit PV kernel runs in ring 3, so the
/// privileged instructions it still executes (MSR access, control registers, port I/O, hlt...)
/// raise #GP and are carried out here against the vCPU's virtual state. Only the guest kernel may
/// use them; port I/O follows the guest's virtual IOPL and then the domain's port permissions
/// (Io/GuestIo: the hardware domain reaches the ports Microhv does not keep; for everyone else a read
/// returns all ones and a write is dropped, as Xen does for ports it does not grant).
/// </summary>
public static class EmulatePrivOp
{
    public const uint MSR_EFER = 0xC0000080, MSR_STAR = 0xC0000081, MSR_LSTAR = 0xC0000082, MSR_CSTAR = 0xC0000083,
        MSR_SYSCALL_MASK = 0xC0000084, MSR_FS_BASE = 0xC0000100, MSR_GS_BASE = 0xC0000101,
        MSR_SHADOW_GS_BASE = 0xC0000102, MSR_TSC_AUX = 0xC0000103, MSR_IA32_APICBASE = 0x1B,
        MSR_IA32_MISC_ENABLE = 0x1A0, MSR_IA32_CR_PAT = 0x277, MSR_IA32_TSC = 0x10;

    public const ulong EFER_SCE = 1, EFER_LME = 1 << 8, EFER_LMA = 1 << 10, EFER_NXE = 1 << 11;
    /// <summary>MISC_ENABLE as Xen shows it: BTS and PEBS unavailable, xTPR disabled.</summary>
    public const ulong MiscEnable = (1UL << 11) | (1UL << 12) | (1UL << 23);
    /// <summary>The PAT the host runs with (power-on default); guest PTE cache bits index it unchanged.</summary>
    public const ulong HostPat = 0x0007040600070406;
    /// <summary>Default local APIC base, BSP, globally enabled.</summary>
    public const ulong ApicBase = 0xFEE00900;

    public const ulong CR0_PE = 1, CR0_MP = 2, CR0_TS = 8, CR0_ET = 0x10, CR0_NE = 0x20, CR0_WP = 1UL << 16, CR0_PG = 1UL << 31;
    public const ulong CR4_PAE = 1 << 5, CR4_OSFXSR = 1 << 9, CR4_OSXMMEXCPT = 1 << 10;
    /// <summary>What a ring-3 kernel sees of the host's CR4 (Xen's PV_CR4_GUEST_VISIBLE_MASK); the bits it
    /// controls itself are added by PvCr4.</summary>
    public const ulong GuestCr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;

    private static readonly byte[] Fetch = new byte[InstructionDecoder.MaxLength];

    /// <summary>Reads up to <paramref name="length"/> instruction bytes at RIP (fewer at the end of a
    /// mapping), one walk and one copy per page; the count read.</summary>
    public static int FetchInstruction(Vcpu v, ulong rip, byte[] buffer, int length) => GuestMemory.Fetch(v, rip, buffer, length);

    public static PrivOpResult Emulate(Vcpu v, ref TrapFrame regs)
    {
        // The bytes left in RIP's page first; the next page only for an instruction that crosses into it.
        int inPage = (int)(Layout.PageSize - (regs.Rip & (Layout.PageSize - 1)));
        int want = inPage < InstructionDecoder.MaxLength ? inPage : InstructionDecoder.MaxLength;
        int count = FetchInstruction(v, regs.Rip, Fetch, want);
        if (!InstructionDecoder.Decode(Fetch, count, out DecodedInstruction insn))
        {
            if (count != want || want == InstructionDecoder.MaxLength) return PrivOpResult.NotEmulated;
            count = FetchInstruction(v, regs.Rip, Fetch, InstructionDecoder.MaxLength);
            if (!InstructionDecoder.Decode(Fetch, count, out insn)) return PrivOpResult.NotEmulated;
        }

        PrivOpResult r;
        if (insn.OpcodeMap == 1 && IsPortIo(insn.Opcode)) r = PortIo(v, ref regs, in insn);
        else if (insn.OpcodeMap == 1 && (insn.Opcode == 0xFA || insn.Opcode == 0xFB)) r = CliSti(v);
        else if (!v.KernelMode) return PrivOpResult.NotEmulated;   // CPL 3 in the guest's own terms
        else if (insn.OpcodeMap == 1 && insn.Opcode == 0xF4) r = Hlt(v);
        else if (insn.OpcodeMap == 2) r = TwoByte(v, ref regs, in insn);
        else r = PrivOpResult.NotEmulated;

        if (r != PrivOpResult.Emulated) return r;
        regs.Rip += (ulong)insn.Length;
        // Single-stepping over an emulated instruction still owes the guest its #DB.
        if ((regs.Rflags & ArchX86.X86_EFLAGS_TF) != 0)
        {
            TrapBounce.Bounce(v, ref regs, TrapBounce.VectorDB, false, 0, 0);
            return PrivOpResult.Delivered;
        }
        return PrivOpResult.Emulated;
    }

    private static PrivOpResult TwoByte(Vcpu v, ref TrapFrame regs, in DecodedInstruction insn)
    {
        switch (insn.Opcode)
        {
            case 0x06: v.FpuTaskSwitched = false; return PrivOpResult.Emulated;      // clts
            case 0x08: case 0x09: return PrivOpResult.Emulated;                     // invd, wbinvd: no cache control for PV
            case 0x30: return WriteMsr(v, (uint)regs.Rcx, (regs.Rdx << 32) | (regs.Rax & 0xFFFF_FFFF));
            case 0x32:
            {
                if (!ReadMsr(v, (uint)regs.Rcx, out ulong value)) return PrivOpResult.NotEmulated;
                regs.Rax = value & 0xFFFF_FFFF;
                regs.Rdx = value >> 32;
                return PrivOpResult.Emulated;
            }
            case 0x31:                                                               // rdtsc (CR4.TSD)
            {
                ulong tsc = v.Domain.Machine.Host.ReadTsc();
                regs.Rax = tsc & 0xFFFF_FFFF;
                regs.Rdx = tsc >> 32;
                return PrivOpResult.Emulated;
            }
            case 0xA2:
                Cpuid(v, ref regs);
                return PrivOpResult.Emulated;
            case 0x01:
                if (insn.ModRM == 0xF9)                                              // rdtscp
                {
                    ulong tsc = v.Domain.Machine.Host.ReadTsc();
                    regs.Rax = tsc & 0xFFFF_FFFF;
                    regs.Rdx = tsc >> 32;
                    regs.Rcx = 0;                                                    // TSC_AUX: vCPU 0
                    return PrivOpResult.Emulated;
                }
                if (insn.RegField == 6) return Lmsw(v, ref regs, in insn);
                return PrivOpResult.NotEmulated;
            case 0x20:
            {
                if (!ReadCr(v, insn.Reg, out ulong value)) return PrivOpResult.NotEmulated;
                InstructionDecoder.WriteRegister(ref regs, insn.Rm, value);
                return PrivOpResult.Emulated;
            }
            case 0x22: return WriteCr(v, insn.Reg, InstructionDecoder.ReadRegister(ref regs, insn.Rm));
            case 0x21:
            {
                if (!DebugRegisters.Get(v, (uint)insn.Reg, out ulong value)) return BounceUd(v, ref regs);
                InstructionDecoder.WriteRegister(ref regs, insn.Rm, value);
                return PrivOpResult.Emulated;
            }
            case 0x23:                                                               // Xen's x86emul_write_dr
            {
                long rc = DebugRegisters.Set(v, (uint)insn.Reg, InstructionDecoder.ReadRegister(ref regs, insn.Rm));
                if (rc == -Errno.ENODEV) return BounceUd(v, ref regs);
                return rc == 0 ? PrivOpResult.Emulated : PrivOpResult.NotEmulated;    // -EINVAL, -EPERM: #GP(0)
            }
        }
        return PrivOpResult.NotEmulated;
    }

    /// <summary>CPUID through the PV policy: EAX leaf, ECX subleaf; the upper halves are cleared.</summary>
    public static void Cpuid(Vcpu v, ref TrapFrame regs)
    {
        PvCpuid.Query(v, (uint)regs.Rax, (uint)regs.Rcx, out uint a, out uint b, out uint c, out uint d);
        regs.Rax = a;
        regs.Rbx = b;
        regs.Rcx = c;
        regs.Rdx = d;
    }

    public static ulong Cr0(Vcpu v) => CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG | (v.FpuTaskSwitched ? CR0_TS : 0);

    public static bool ReadCr(Vcpu v, int cr, out ulong value)
    {
        value = 0;
        switch (cr)
        {
            case 0: value = Cr0(v); return true;
            case 2: value = TrapBounce.GetCr2(v); return true;
            // xen_pfn_to_cr3 of the current table: a PV guest sees the machine address.
            case 3: value = v.KernelMode || v.GuestTableUser == 0 ? v.GuestTable : v.GuestTableUser; return true;
            case 4: value = PvCr4.Read(v); return true;
        }
        return false;
    }

    public static PrivOpResult WriteCr(Vcpu v, int cr, ulong value)
    {
        switch (cr)
        {
            case 0:
                if (((value ^ Cr0(v)) & ~CR0_TS) != 0) return PrivOpResult.NotEmulated;   // only TS may change
                v.FpuTaskSwitched = (value & CR0_TS) != 0;
                return PrivOpResult.Emulated;
            case 2:
                TrapBounce.SetCr2(v, value);
                return PrivOpResult.Emulated;
            case 3:
            {
                ulong mfn = (value & PageTableEntry.AddressMask) >> Layout.PageShift;
                long rc = MmuExtOp.One(v, v.Domain, Xen.MMUEXT_NEW_BASEPTR, mfn, 0);
                return rc == 0 ? PrivOpResult.Emulated : PrivOpResult.NotEmulated;
            }
            case 4:
                PvCr4.Write(v, value);    // Xen's pv_fixup_guest_cr4: bits outside the guest's control are dropped
                return PrivOpResult.Emulated;
        }
        return PrivOpResult.NotEmulated;
    }

    /// <summary>A MOV to or from a debug register that does not exist: #UD, as Xen's emulator raises.</summary>
    private static PrivOpResult BounceUd(Vcpu v, ref TrapFrame regs)
    {
        TrapBounce.Bounce(v, ref regs, TrapBounce.VectorUD, false, 0, 0);
        return PrivOpResult.Delivered;
    }

    private static PrivOpResult Lmsw(Vcpu v, ref TrapFrame regs, in DecodedInstruction insn)
    {
        ulong src;
        if (insn.HasMemoryOperand)
        {
            ulong ea = InstructionDecoder.EffectiveAddress(in insn, ref regs, v);
            if (!GuestMemory.ReadU8(v, ea, out byte low)) return PrivOpResult.NotEmulated;
            src = low;
        }
        else src = InstructionDecoder.ReadRegister(ref regs, insn.Rm);
        ulong cr0 = Cr0(v);
        // lmsw loads PE, MP, EM, TS but cannot clear PE.
        ulong value = (cr0 & ~0xEUL) | (src & 0xF) | (cr0 & CR0_PE);
        return WriteCr(v, 0, value);
    }

    public static bool ReadMsr(Vcpu v, uint msr, out ulong value)
    {
        value = 0;
        switch (msr)
        {
            case MSR_FS_BASE: value = SegmentBases.Fs(v); return true;
            case MSR_GS_BASE: value = SegmentBases.GsKernel(v); return true;     // the kernel's, since only the kernel gets here
            case MSR_SHADOW_GS_BASE: value = SegmentBases.GsUser(v); return true;
            case MSR_EFER: value = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE; return true;
            case MSR_IA32_MISC_ENABLE: value = MiscEnable; return true;
            case MSR_IA32_CR_PAT: value = HostPat; return true;
            case MSR_IA32_APICBASE: value = ApicBase; return true;
            case MSR_IA32_TSC: value = v.Domain.Machine.Host.ReadTsc(); return true;
            case MSR_TSC_AUX: value = 0; return true;
        }
        return false;
    }

    public static PrivOpResult WriteMsr(Vcpu v, uint msr, ulong value)
    {
        switch (msr)
        {
            case MSR_FS_BASE:
                if (!PageTableEntry.IsCanonical(value)) return PrivOpResult.NotEmulated;
                SegmentBases.SetFs(v, value);
                return PrivOpResult.Emulated;
            case MSR_GS_BASE:
                if (!PageTableEntry.IsCanonical(value)) return PrivOpResult.NotEmulated;
                SegmentBases.SetGsKernel(v, value);
                return PrivOpResult.Emulated;
            case MSR_SHADOW_GS_BASE:
                if (!PageTableEntry.IsCanonical(value)) return PrivOpResult.NotEmulated;
                SegmentBases.SetGsUser(v, value);
                return PrivOpResult.Emulated;
            // Writes Xen drops with a warning rather than fault: the guest cannot change these.
            case MSR_EFER:
            case MSR_IA32_MISC_ENABLE:
            case MSR_IA32_CR_PAT:
            case MSR_IA32_APICBASE:
            case MSR_STAR: case MSR_LSTAR: case MSR_CSTAR: case MSR_SYSCALL_MASK:
                return PrivOpResult.Emulated;
        }
        return PrivOpResult.NotEmulated;
    }

    private static PrivOpResult Hlt(Vcpu v)
    {
        // Sleep until an event is deliverable (Xen's SCHEDOP_block without re-enabling events).
        if (!(VcpuInfo.UpcallPending(v) != 0 && VcpuInfo.UpcallMask(v) == 0))
        {
            v.Blocked = true;
            v.PendingExitWork |= ExitWork.Reschedule;
        }
        return PrivOpResult.Emulated;
    }

    private static bool IsPortIo(int op) => (op >= 0xE4 && op <= 0xE7) || (op >= 0xEC && op <= 0xEF) || (op >= 0x6C && op <= 0x6F);

    /// <summary>Xen's iopl_ok: the guest kernel is virtual ring 1 (ring 0 with architectural IOPL), its user space ring 3.</summary>
    public static bool IoplOk(Vcpu v)
    {
        int cpl = v.KernelMode ? ((v.Domain.VmAssist & (1UL << Xen.VMASST_TYPE_architectural_iopl)) != 0 ? 0 : 1) : 3;
        return cpl <= v.Iopl;
    }

    /// <summary>
    /// Xen lets cli/sti through as no-ops when the virtual IOPL allows them (Linux's
    /// this_cpu_cmpxchg16b_emu brackets itself with pushf/cli/popf): the event mask is left alone,
    /// because the popf that follows cannot be trapped to undo it.
    /// </summary>
    private static PrivOpResult CliSti(Vcpu v) => IoplOk(v) ? PrivOpResult.Emulated : PrivOpResult.NotEmulated;

    /// <summary>Bound on string I/O iterations per trap; a longer REP re-executes and traps again.</summary>
    public const int MaxStringIterations = 1024;

    private static PrivOpResult PortIo(Vcpu v, ref TrapFrame regs, in DecodedInstruction insn)
    {
        if (!IoplOk(v)) return PrivOpResult.NotEmulated;
        int op = insn.Opcode;
        int size = (op & 1) == 0 ? 1 : (insn.OperandSize == 2 ? 2 : 4);
        if (op >= 0x6C && op <= 0x6F) return StringIo(v, ref regs, in insn, size);
        uint port = op >= 0xEC ? (uint)(regs.Rdx & 0xFFFF) : (uint)insn.Immediate & 0xFF;
        bool isIn = op == 0xE4 || op == 0xE5 || op == 0xEC || op == 0xED;
        if (!isIn)
        {
            GuestIo.Write(v.Domain, port, size, (uint)regs.Rax);
            return PrivOpResult.Emulated;
        }
        ulong data = GuestIo.Read(v.Domain, port, size);
        if (size == 1) regs.Rax = (regs.Rax & ~0xFFUL) | (data & 0xFF);
        else if (size == 2) regs.Rax = (regs.Rax & ~0xFFFFUL) | (data & 0xFFFF);
        else regs.Rax = data & 0xFFFF_FFFF;                                  // 32-bit results zero-extend
        return PrivOpResult.Emulated;
    }

    private static PrivOpResult StringIo(Vcpu v, ref TrapFrame regs, in DecodedInstruction insn, int size)
    {
        bool isIn = insn.Opcode == 0x6C || insn.Opcode == 0x6D;
        bool rep = insn.HasPrefix(InstructionPrefix.Rep) || insn.HasPrefix(InstructionPrefix.Repne);
        ulong addrMask = insn.AddressSize == 4 ? 0xFFFF_FFFFUL : 0xFFFF_FFFF_FFFF_FFFFUL;
        ulong remaining = rep ? regs.Rcx & addrMask : 1;
        ulong step = (regs.Rflags & ArchX86.X86_EFLAGS_DF) != 0 ? (ulong)(-(long)size) : (ulong)size;
        uint port = (uint)(regs.Rdx & 0xFFFF);
        for (int n = 0; remaining != 0; n++)
        {
            if (n == MaxStringIterations) return PrivOpResult.Delivered;     // resume at the same instruction
            if (isIn)
            {
                ulong dst = regs.Rdi & addrMask;                             // ES has base 0 in long mode
                for (int k = 0; k < size; k++)                               // the destination must be writable before the port is read
                    if (!GuestMemory.Translate(v, dst + (ulong)k, true, out _)) return PageFault(v, ref regs, dst + (ulong)k, true);
                uint data = GuestIo.Read(v.Domain, port, size);
                for (int k = 0; k < size; k++)
                    if (!GuestMemory.WriteU8(v, dst + (ulong)k, (byte)(data >> (8 * k)))) return PageFault(v, ref regs, dst + (ulong)k, true);
                regs.Rdi = (regs.Rdi & ~addrMask) | ((regs.Rdi + step) & addrMask);
            }
            else
            {
                ulong src = (regs.Rsi & addrMask) + SegmentBase(v, insn.Segment);
                uint data = 0;
                for (int k = 0; k < size; k++)
                {
                    if (!GuestMemory.ReadU8(v, src + (ulong)k, out byte b)) return PageFault(v, ref regs, src + (ulong)k, false);
                    data |= (uint)b << (8 * k);
                }
                GuestIo.Write(v.Domain, port, size, data);
                regs.Rsi = (regs.Rsi & ~addrMask) | ((regs.Rsi + step) & addrMask);
            }
            remaining--;
            if (rep) regs.Rcx = (regs.Rcx & ~addrMask) | remaining;
        }
        return PrivOpResult.Emulated;
    }

    private static ulong SegmentBase(Vcpu v, int segment)
    {
        if (segment == SegmentRegister.FS) return SegmentBases.Fs(v);
        if (segment == SegmentRegister.GS) return SegmentBases.ActiveGs(v);
        return 0;
    }

    /// <summary>A string I/O access that faults becomes the guest's #PF at that address (instruction not retired).</summary>
    private static PrivOpResult PageFault(Vcpu v, ref TrapFrame regs, ulong address, bool write)
    {
        ulong err = 4UL | (write ? 2UL : 0UL);
        if (GuestMemory.Translate(v, address, false, out _)) err |= 1;       // present, but read-only
        TrapBounce.Bounce(v, ref regs, TrapBounce.VectorPF, true, err, address);
        return PrivOpResult.Delivered;
    }
}
