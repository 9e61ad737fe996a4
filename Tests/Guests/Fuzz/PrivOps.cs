using System.Runtime;
using System.Runtime.CompilerServices;

namespace Microhv.Guests.Fuzz;

/// <summary>
/// Privileged and faulting instructions (probes.asm), with operands from the sandbox: ports the
/// machine really has (0xf4 is QEMU's exit device, 0xcf9 resets), MSRs that steer SYSCALL, control
/// and debug registers, selectors, wild jumps. A probe that traps is abandoned by the trap handler.
/// Writes to memory go only to our read-only page tables' playground slots or to addresses we have
/// no mapping of; a CR3 write names our own L4 or a frame that is not ours.
/// </summary>
internal static unsafe class PrivOps
{
    [RuntimeImport("*", "fuzz_probe")] [MethodImpl(MethodImplOptions.InternalCall)]
    public static extern ulong Probe(ulong which, ulong a, ulong b, ulong c);

    public const int Count = 77;
    private const int InsB = 7, OutsB = 8, RdMsr = 9, WrMsr = 10, WrCr3 = 14, Read = 37, Write = 38, Iretq = 39;
    private const int Popf = 59, Jmp = 64, CallFar = 68, Retf = 69, Int82 = 70;

    private static readonly ushort[] Ports = { 0xF4, 0xCF9, 0x64, 0x60, 0x20, 0x21, 0xA0, 0x40, 0x43, 0x61, 0x70, 0x71, 0x80, 0x92, 0x3F8, 0x3FD, 0xCF8, 0xCFC, 0x402, 0x510, 0xB2, 0x600 };
    private static readonly uint[] Msrs = { 0x10, 0x1B, 0x3A, 0x8B, 0x174, 0x175, 0x176, 0x1D9, 0x277, 0x6E0, 0x802, 0x80B, 0x830, 0xC0000080, 0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084, 0xC0000100, 0xC0000101, 0xC0000102, 0xC0000103, 0xC0010015, 0x40000000 };

    public static void Choose(out ulong which, out ulong a, out ulong b, out ulong c)
    {
        which = (ulong)Rng.Int(Count);
        a = Sandbox.Value(); b = Sandbox.Value(); c = Rng.OneIn(2) ? Rng.Below(64) : Sandbox.Count();
        if (which == 0) which = 73;                          // never hlt: it sleeps until an event, and ours stay masked
        switch ((int)which)
        {
            case 3: case 4: case 5: case 6: case InsB: case OutsB:
                a = Rng.OneIn(4) ? Rng.Below(0x10000) : Ports[Rng.Int(Ports.Length)];
                if ((int)which == InsB || (int)which == OutsB) b = Sandbox.Va();
                break;
            case RdMsr: case WrMsr: a = Rng.OneIn(4) ? Rng.Next() & 0xFFFFFFFF : Msrs[Rng.Int(Msrs.Length)]; break;
            case WrCr3:
                ulong mfn = Rng.OneIn(2) ? Sandbox.L4Mfn : Sandbox.Mfn();
                if (Sandbox.IsOwn(mfn)) mfn = Sandbox.L4Mfn;
                a = mfn << 12 | (Rng.OneIn(4) ? Rng.Below(4096) : 0);
                break;
            case 17: case 18: case 19: case 20: a = Sandbox.Va(); break;   // lgdt/lidt/sgdt/sidt operand
            case Read: a = Sandbox.Va(); break;
            case Write:                                       // our read-only page tables (writable page tables), or unmapped
                switch (Rng.Int(4))
                {
                    case 0: a = (ulong)Guest.WindowL1 + (ulong)(Sandbox.PlaygroundSlot + Rng.Int(Sandbox.WindowSlots - Sandbox.PlaygroundSlot)) * 8; b = Sandbox.Pte(); break;
                    case 1: a = Xen.MACH2PHYS_VIRT_START + Rng.Below(1UL << 20) * 8; break;
                    case 2: a = Sandbox.NonCanonical(); break;
                    default: a = Guest.Layout->VirtBase + 0x40000000UL + Rng.Below(1UL << 20) * 4096; break;
                }
                break;
            case Iretq: case CallFar: case Retf:
                // Never a selector that could name a usable code segment but the 64-bit one: Xen's GDT has
                // 32-bit ring-1 and ring-3 ones (0xe019, 0xe023), and set_gdt may have added more, and a far
                // transfer into compatibility mode truncates RIP and RSP (legitimately fatal, seed 2).
                a = Rng.OneIn(3) ? 0xE033 : Rng.OneIn(3) ? 0xE02B : Rng.OneIn(2) ? 0 : 0xF000 + Rng.Below(0x1000);
                b = Rng.OneIn(2) ? 0xE02B : Rng.OneIn(2) ? 0 : 0xF000 + Rng.Below(0x1000);
                break;
            case Popf: b = (Rng.Next() & 0x3FFFFF & ~(1UL << 18 | 1UL << 10 | 1UL << 14)) | 2; break;   // no AC, DF or NT
            case Jmp:
                int k = Rng.Int(3);
                a = k == 0 ? Sandbox.NonCanonical() : k == 1 ? 0xFFFF82D080000000UL + Rng.Below(1UL << 20) : Guest.Layout->VirtBase + 0x40000000UL;
                break;
            case Int82: b = Rng.OneIn(2) ? 17 : Rng.OneIn(2) ? 5 : 64 + Rng.Below(1000); a = Rng.Below(12); break;   // harmless numbers only
        }
    }
}
