; Microhv boot stub: from GRUB's 32-bit multiboot2 hand-off to the C# kernel in long mode.
; The kernel is linked in Xen's hypervisor hole (KERNEL_VMA + physical address); this stub and
; its page tables live in .boot, linked at their physical address, because paging is off here.

%define KERNEL_VMA        0xFFFF82D080000000
%define DIRECTMAP_VMA     0xFFFF830000000000
%define MB2_MAGIC         0xE85250D6
%define MB2_BOOT_MAGIC    0x36D76289
%define COM1              0x3F8

section .multiboot align=8
mb2_header:
    dd MB2_MAGIC
    dd 0                                  ; architecture: i386 protected mode
    dd mb2_header_end - mb2_header
    dd -(MB2_MAGIC + 0 + (mb2_header_end - mb2_header))
    ; No framebuffer request tag: under BIOS GRUB then leaves VGA text mode (gfxpayload=text);
    ; under UEFI there is no text mode and GRUB passes the GOP framebuffer it has.
    align 8
    dw 0, 0                               ; end tag
    dd 8
mb2_header_end:

section .boot.text progbits alloc exec nowrite align=16
bits 32
global _start32
_start32:
    cli
    mov esp, boot_stack_top
    mov [boot_magic], eax
    mov [boot_mbi], ebx
    cmp eax, MB2_BOOT_MAGIC
    jne .not_multiboot2

    ; long mode present? (CPUID 0x80000001 EDX.LM)
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb .no_long_mode
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29
    jz .no_long_mode
    mov [boot_ext_edx], edx

    ; boot page tables: 0-4 GiB identity, the same at DIRECTMAP_VMA, first 1 GiB at KERNEL_VMA
    mov edi, boot_tables_start
    mov ecx, (boot_tables_end - boot_tables_start) / 4
    xor eax, eax
    rep stosd
    mov dword [boot_pml4 + 0 * 8], boot_pdpt_low + 3
    mov dword [boot_pml4 + 262 * 8], boot_pdpt_low + 3
    mov dword [boot_pml4 + 261 * 8], boot_pdpt_img + 3
    mov dword [boot_pdpt_img + 322 * 8], boot_pd + 3
    mov ecx, 0
.fill_pdpt:
    mov eax, ecx
    shl eax, 12
    add eax, boot_pd + 3
    mov [boot_pdpt_low + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jb .fill_pdpt
    mov ecx, 0                            ; 2048 2 MiB pages = 4 GiB
.fill_pd:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83                          ; present, writable, PS
    mov [boot_pd + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov [boot_pd + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jb .fill_pd

    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)   ; PAE, OSFXSR, OSXMMEXCPT
    mov cr4, eax
    mov eax, boot_pml4
    mov cr3, eax
    mov ecx, 0xC0000080                   ; EFER
    rdmsr
    or eax, 1 << 8                        ; LME
    test dword [boot_ext_edx], 1 << 20
    jz .no_nx
    or eax, 1 << 11                       ; NXE
.no_nx:
    wrmsr
    mov eax, cr0
    and eax, ~(1 << 2)                    ; clear EM
    or eax, (1 << 31) | (1 << 1) | 1      ; PG, MP, PE
    mov cr0, eax
    lgdt [boot_gdtr]
    jmp 0x08:.long_mode

.not_multiboot2:
    mov esi, msg_not_mb2
    jmp .fail32
.no_long_mode:
    mov esi, msg_no_lm
.fail32:
    mov dx, COM1 + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    mov dx, COM1
    lodsb
    test al, al
    jz .halt32
    out dx, al
    jmp .fail32 + 0
.halt32:
    hlt
    jmp .halt32

bits 64
.long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rax, kernel_entry64
    jmp rax

section .boot.data progbits alloc noexec write align=16
boot_gdt:
    dq 0
    dq 0x00AF9A000000FFFF                  ; 64-bit code, DPL0
    dq 0x00CF92000000FFFF                  ; data, DPL0
boot_gdtr:
    dw 3 * 8 - 1
    dd boot_gdt
global boot_magic, boot_mbi
boot_magic:   dd 0
boot_mbi:     dd 0
boot_ext_edx: dd 0
msg_not_mb2:  db "Microhv: not booted by a multiboot2 loader; halting", 13, 10, 0
msg_no_lm:    db "Microhv: this CPU has no long mode (x86-64); halting", 13, 10, 0

section .boot.bss nobits alloc noexec write align=4096
boot_tables_start:
boot_pml4:     resb 4096
boot_pdpt_low: resb 4096
boot_pdpt_img: resb 4096
boot_pd:       resb 4 * 4096
boot_tables_end:
               resb 4096
boot_stack_top:

; ---------------------------------------------------------------- high half
section .text
bits 64
extern kmain, __bss_start, __bss_end
kernel_entry64:
    mov rdi, __bss_start
    mov rcx, __bss_end
    sub rcx, rdi
    shr rcx, 3
    xor eax, eax
    cld
    rep stosq
    mov rsp, stack_top
    xor ebp, ebp
    mov edi, [boot_magic]
    mov esi, [boot_mbi]
    lea rdx, [rel boot_layout]
    call kmain
.halt:
    cli
    hlt
    jmp .halt

section .rodata
extern __modules_start, __modules_end, __text_start, __text_end, __rodata_start, __rodata_end
extern __data_start, __data_end, __image_start, __image_end, idle_stack_guard
global boot_layout
align 8
; Read by Kernel/BootLayout.cs: keep the two in the same order.
boot_layout:
    dq KERNEL_VMA, DIRECTMAP_VMA
    dq __image_start, __image_end
    dq __text_start, __text_end
    dq __rodata_start, __rodata_end
    dq __data_start, __data_end
    dq __bss_start, __bss_end
    dq __modules_start, __modules_end
    dq stack_guard, stack_top
    dq ist_stacks, ist_stacks_end
    dq early_heap, early_heap_end
    dq boot_pml4
    dq idle_stack_guard

section .data
global __security_cookie
align 8
; RyuJIT's stack cookie for methods with stackalloc (checked on return).
__security_cookie: dq 0x2F5A_93C1_6E0D_B847

section .bss nobits alloc noexec write align=4096
global stack_guard, stack_top, ist_stacks, ist_stacks_end
stack_guard:     resb 4096               ; unmapped by the kernel's page tables
stack_bottom:    resb 64 * 1024
stack_top:
ist_stacks:      resb 4 * (4096 + 16384) ; #DF, NMI, #MC, #DB: guard page + 16 KiB each
ist_stacks_end:
early_heap:      resb 24 * 1024 * 1024   ; the managed heap until the frame allocator runs
early_heap_end:

section .note.GNU-stack noalloc noexec nowrite progbits
