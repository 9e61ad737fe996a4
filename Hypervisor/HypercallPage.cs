using Microhv.HAL;

namespace Microhv.Hypervisor;

/// <summary>
/// The hypercall page a guest names with XEN_ELFNOTE_HYPERCALL_PAGE, filled as Xen fills it for a
/// 64-bit PV kernel running in ring 3 (xen/arch/x86/pv/hypercall.c): one 32-byte stub per hypercall
/// number that saves the registers SYSCALL clobbers, loads the number and enters the hypervisor.
/// Unused bytes are INT3 so a stray jump into the page traps.
/// </summary>
public static class HypercallPage
{
    public const int StubSize = 32;
    public const int StubCount = 4096 / StubSize;

    /// <summary>Fills the 4 KiB page at machine address <paramref name="page"/>.</summary>
    public static void Initialise(PhysicalMemory memory, ulong page)
    {
        memory.Fill(page, 0xCC, Layout.PageSize);
        for (int i = 0; i < StubCount; i++)
        {
            ulong p = page + (ulong)(i * StubSize);
            if (i == Public.Xen.__HYPERVISOR_iret)
            {
                // iret does not return: the guest jumps here with its frame on the stack, and RAX is saved too.
                memory.Write8(p + 0, 0x51);          // push rcx
                memory.Write16(p + 1, 0x5341);       // push r11
                memory.Write8(p + 3, 0x50);          // push rax
                memory.Write8(p + 4, 0xB8);          // mov eax, imm32
                memory.Write32(p + 5, (uint)i);
                memory.Write16(p + 9, 0x050F);       // syscall
                continue;
            }
            memory.Write8(p + 0, 0x51);              // push rcx
            memory.Write16(p + 1, 0x5341);           // push r11
            memory.Write8(p + 3, 0xB8);              // mov eax, imm32
            memory.Write32(p + 4, (uint)i);
            memory.Write16(p + 8, 0x050F);           // syscall
            memory.Write16(p + 10, 0x5B41);          // pop r11
            memory.Write8(p + 12, 0x59);             // pop rcx
            memory.Write8(p + 13, 0xC3);             // ret
        }
    }
}
