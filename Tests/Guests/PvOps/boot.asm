; pvops boot: two entries into one image. GRUB enters _start32 (multiboot2, 32-bit, paging off):
; it builds page tables (the first GiB identity and at VIRT_BASE, the first 16 MiB of that in
; 4 KiB pages so single pages can be remapped, and an identity machine-to-phys table where Xen
; puts its M2P) and jumps to _start64. A Xen loader enters _start (ring 3, start_info in rsi).

%define VIRT_BASE      0xFFFFFFFF80000000
%define MB2_MAGIC      0xE85250D6
%define MB2_BOOT_MAGIC 0x36D76289
%define COM1           0x3F8
%define SMALL_PAGES    4096               ; 16 MiB mapped with 4 KiB pages (also nr_pages under the shim)

%macro XEN_NOTE_STR 2
    align 4
    dd 4, %%end - %%desc, %1
    db "Xen", 0
%%desc:
    db %2, 0
%%end:
    align 4
%endmacro
%macro XEN_NOTE_QUAD 2
    align 4
    dd 4, 8, %1
    db "Xen", 0
    dq %2
%endmacro

section .note.Xen note alloc noexec nowrite align=4
    XEN_NOTE_STR  6, "Microhv-pvops"                   ; GUEST_OS
    XEN_NOTE_STR  7, "0.1"                             ; GUEST_VERSION
    XEN_NOTE_STR  5, "xen-3.0"                         ; XEN_VERSION
    XEN_NOTE_QUAD 3, VIRT_BASE                         ; VIRT_BASE
    XEN_NOTE_QUAD 4, 0                                 ; PADDR_OFFSET
    XEN_NOTE_QUAD 1, _start                            ; ENTRY
    XEN_NOTE_QUAD 2, hypercall_page                    ; HYPERCALL_PAGE
    XEN_NOTE_STR 10, "!writable_page_tables|pae_pgdir_above_4gb" ; FEATURES
    XEN_NOTE_STR  9, "yes"                             ; PAE_MODE
    XEN_NOTE_STR  8, "generic"                         ; LOADER
    ; docs/abi-rom.md: ask Microhv for its ABI ROM at the default address, ABI 1.0.
    align 4
    dd 8, 8, 1
    db "Microhv", 0
    dq 0                                               ; ABI_ROM: default 0xFFFFFFFFFFC00000
    align 4
    dd 8, 4, 2
    db "Microhv", 0
    dw 1, 0                                            ; ABI_VERSION 1.0

section .multiboot align=8
mb2_header:
    dd MB2_MAGIC
    dd 0
    dd mb2_header_end - mb2_header
    dd -(MB2_MAGIC + 0 + (mb2_header_end - mb2_header))
    align 8
    dw 0, 0
    dd 8
mb2_header_end:

section .boot.text progbits alloc exec write align=16
bits 32
global _start32
_start32:
    cli
    mov esp, boot_stack_top
    cmp eax, MB2_BOOT_MAGIC
    jne .halt
    mov [boot_mbi], ebx
    mov edi, boot_tables_start
    mov ecx, (boot_tables_end - boot_tables_start) / 4
    xor eax, eax
    rep stosd
    mov dword [boot_pml4 + 0 * 8], boot_pdpt_low + 3
    mov dword [boot_pml4 + 511 * 8], boot_pdpt_high + 3
    mov dword [boot_pml4 + 256 * 8], boot_m2p_l3 + 7   ; Xen's MACH2PHYS_VIRT_START
    mov dword [boot_pdpt_low], boot_pd + 3
    mov dword [boot_pdpt_high + 510 * 8], boot_pd + 3
    mov dword [boot_m2p_l3], boot_m2p_l2 + 7
    mov dword [boot_m2p_l2], boot_m2p_l1 + 7
    xor ecx, ecx
.fill_pd:                                  ; 512 x 2 MiB = the first GiB
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [boot_pd + ecx * 8], eax
    inc ecx
    cmp ecx, 512
    jb .fill_pd
    xor ecx, ecx
.fill_l1:                                  ; the first 16 MiB again, in 4 KiB pages
    mov eax, ecx
    shl eax, 12
    or eax, 0x63
    mov [boot_l1 + ecx * 8], eax
    inc ecx
    cmp ecx, SMALL_PAGES
    jb .fill_l1
    xor ecx, ecx
.fill_pd_small:
    mov eax, ecx
    shl eax, 12
    add eax, boot_l1 + 0x63
    mov [boot_pd + ecx * 8], eax
    inc ecx
    cmp ecx, SMALL_PAGES / 512
    jb .fill_pd_small
    xor ecx, ecx
.fill_m2p:                                 ; identity machine-to-phys (and phys-to-machine) list
    mov [boot_m2p + ecx * 8], ecx
    inc ecx
    cmp ecx, SMALL_PAGES
    jb .fill_m2p
    xor ecx, ecx
.fill_m2p_l1:
    mov eax, ecx
    shl eax, 12
    add eax, boot_m2p + 0x65                ; read-only, as Xen maps it
    mov [boot_m2p_l1 + ecx * 8], eax
    inc ecx
    cmp ecx, SMALL_PAGES * 8 / 4096
    jb .fill_m2p_l1

    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)   ; PAE, OSFXSR, OSXMMEXCPT
    mov cr4, eax
    mov eax, boot_pml4
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 1 << 8                         ; EFER.LME
    wrmsr
    mov eax, cr0
    and eax, ~(1 << 2)
    or eax, (1 << 31) | (1 << 1) | 1       ; PG, MP, PE; WP stays clear (the shim writes read-only PTEs' pages)
    mov cr0, eax
    lgdt [boot_gdtr]
    jmp 0x08:.long_mode
.halt:
    hlt
    jmp .halt
bits 64
.long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    mov rax, _start64
    jmp rax

section .boot.data progbits alloc noexec write align=16
global boot_gdt
boot_gdt:
    dq 0
    dq 0x00AF9A000000FFFF                  ; 0x08: 64-bit code, DPL0
    dq 0x00CF92000000FFFF                  ; 0x10: data, DPL0
boot_gdtr:
    dw 3 * 8 - 1
    dd boot_gdt
global boot_mbi
boot_mbi: dd 0, 0

section .boot.bss nobits alloc noexec write align=4096
global boot_pml4, boot_m2p
boot_tables_start:
boot_pml4:      resb 4096
boot_pdpt_low:  resb 4096
boot_pdpt_high: resb 4096
boot_pd:        resb 4096
boot_l1:        resb SMALL_PAGES * 8
boot_m2p_l3:    resb 4096
boot_m2p_l2:    resb 4096
boot_m2p_l1:    resb 4096
boot_m2p:       resb SMALL_PAGES * 8
boot_tables_end:
                resb 4096
boot_stack_top:

section .text.head progbits alloc exec nowrite align=4096
extern pvops_xen_main, pvops_native_main
global _start, _start64
_start:                                    ; Xen PV entry: rsi = start_info
    cld
    lea rsp, [rel stack_top]
    xor ebp, ebp
    mov rdi, rsi
    lea rsi, [rel pvops_layout]
    call pvops_xen_main
.crash:
    mov edi, 2                             ; SCHEDOP_shutdown
    lea rsi, [rel shutdown_crash]
    mov eax, 29
    syscall
    jmp .crash
_start64:                                  ; native entry, ring 0, from _start32
    cld
    lea rsp, [rel stack_top]
    xor ebp, ebp
    mov eax, boot_mbi
    mov edi, [rax]
    mov rax, VIRT_BASE
    add rdi, rax                           ; the multiboot2 information, through the direct map
    lea rsi, [rel pvops_layout]
    call pvops_native_main
.halt:
    cli
    hlt
    jmp .halt

align 4096
global hypercall_page
hypercall_page:
    times 4096 db 0xCC                     ; Xen fills it; the native shim fills it with calls into itself

section .rodata
shutdown_crash: dd 3

section .data
global __security_cookie
align 8
__security_cookie: dq 0x5E1F_0A7D_93C4_21B6

section .bss nobits alloc noexec write align=4096
global guest_pages, guest_pages_end
guest_pages:     resb 160 * 4096           ; page tables and data pages of the workload
guest_pages_end:
guest_heap:      resb 512 * 1024
guest_heap_end:
stack_bottom:    resb 64 * 1024
stack_top:

section .rodata
extern __modules_start, __modules_end, __image_start, __image_end
global pvops_layout
align 8
pvops_layout:                              ; Common/GuestLayout.cs order
    dq VIRT_BASE
    dq __image_start, __image_end
    dq __modules_start, __modules_end
    dq guest_heap, guest_heap_end
    dq guest_pages, guest_pages_end
    dq stack_bottom, stack_top
    dq hypercall_page

section .note.GNU-stack noalloc noexec nowrite progbits
