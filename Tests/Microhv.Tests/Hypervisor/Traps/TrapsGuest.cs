using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>
/// A domain for the trap tests: kernel and user L4s sharing one L1 that maps, at Base, an argument
/// page, a code page, two kernel-stack pages and a user-stack page (all user, writable), and a
/// shared_info frame. Page-table frames are raw (not typed), which is enough for GuestMemory walks.
/// </summary>
public sealed class TrapsGuest
{
    public const ulong Base = 0x40_0000;
    public const int ArgsSlot = 0, CodeSlot = 1, KStackSlot = 2, UStackSlot = 4, Slots = 5;
    public static ulong Va(int slot) => Base + (ulong)slot * 4096;
    public static readonly ulong KernelStackTop = Va(KStackSlot + 2);
    public static readonly ulong UserStackTop = Va(UStackSlot + 1);

    public readonly TestMachine T = new();
    public readonly Domain D;
    public readonly Vcpu V;
    public readonly ulong L4, UserL4, L3, L2, L1, SharedInfoMfn;
    public readonly ulong[] Page = new ulong[Slots];

    public TrapsGuest(ushort id = 1)
    {
        D = T.AddDomain(id);
        V = D.Vcpu;
        L4 = T.NewFrame(id); UserL4 = T.NewFrame(id); L3 = T.NewFrame(id); L2 = T.NewFrame(id); L1 = T.NewFrame(id);
        const ulong f = PageTableEntry.Present | PageTableEntry.Writable | PageTableEntry.User;
        Set(L4, 0, (L3 << 12) | f);
        Set(UserL4, 0, (L3 << 12) | f);
        Set(L3, 0, (L2 << 12) | f);
        Set(L2, 2, (L1 << 12) | f);
        for (int i = 0; i < Slots; i++)
        {
            Page[i] = T.NewFrame(id);
            Set(L1, i, (Page[i] << 12) | f);
        }
        SharedInfoMfn = T.NewFrame(FrameTable.OwnerXen);
        D.SharedInfoMfn = SharedInfoMfn;
        V.GuestTable = L4 << 12;
        V.GuestTableUser = UserL4 << 12;
        V.KernelMode = true;
        V.KernelSs = Xen.FLAT_KERNEL_SS64;
        V.KernelSp = KernelStackTop;
    }

    public void Set(ulong table, int index, ulong value) => T.Memory.Poke64(table * 4096 + (ulong)index * 8, value);

    /// <summary>Machine address of guest virtual address <paramref name="va"/> inside the mapped slots.</summary>
    public ulong Ma(ulong va) => Page[(int)((va - Base) >> 12)] * 4096 + (va & 0xFFF);
    public ulong Read64(ulong va) => T.Memory.Peek64(Ma(va));
    public void Write64(ulong va, ulong value) => T.Memory.Poke64(Ma(va), value);
    public void WriteBytes(ulong va, params byte[] bytes) { for (int i = 0; i < bytes.Length; i++) T.Memory.Write8(Ma(va + (ulong)i), bytes[i]); }

    public ulong VcpuInfo => SharedInfoMfn * 4096;
    public byte UpcallMask { get => T.Memory.Read8(VcpuInfo + SharedInfo.evtchn_upcall_mask); set => T.Memory.Write8(VcpuInfo + SharedInfo.evtchn_upcall_mask, value); }
    public byte UpcallPending { get => T.Memory.Read8(VcpuInfo + SharedInfo.evtchn_upcall_pending); set => T.Memory.Write8(VcpuInfo + SharedInfo.evtchn_upcall_pending, value); }
    public ulong Cr2 => T.Memory.Read64(VcpuInfo + SharedInfo.arch_cr2);

    /// <summary>Installs a trap-table entry directly.</summary>
    public void Trap(int vector, ulong address, byte flags = 0) => V.TrapTable[vector] = new TrapInfo { Vector = (byte)vector, Flags = flags, Cs = Xen.FLAT_KERNEL_CS64, Address = address };

    /// <summary>A guest frame at ring 3 in kernel mode, running code at the code page.</summary>
    public TrapFrame KernelFrame(ulong rip = 0) => new TrapFrame
    {
        Rip = rip == 0 ? Va(CodeSlot) : rip, Cs = Xen.FLAT_KERNEL_CS64, Ss = Xen.FLAT_KERNEL_SS64,
        Rsp = KernelStackTop - 0x100, Rflags = 0x202, Rcx = 0x1111, R11 = 0x2222,
    };
}
