; pvtest: a Xen x86-64 PV guest kernel. The ELF notes tell the domain builder how to load it
; (xen/include/public/elfnote.h); the entry receives start_info in rsi and runs in ring 3.
bits 64

%define VIRT_BASE 0xFFFFFFFF80000000

; One note: name "Xen", a type from elfnote.h, and its descriptor.
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
    XEN_NOTE_STR  6, "Microhv-pvtest"                  ; GUEST_OS
    XEN_NOTE_STR  7, "0.1"                             ; GUEST_VERSION
    XEN_NOTE_STR  5, "xen-3.0"                         ; XEN_VERSION
    XEN_NOTE_QUAD 3, VIRT_BASE                         ; VIRT_BASE
    XEN_NOTE_QUAD 4, 0                                 ; PADDR_OFFSET: p_paddr = p_vaddr - VIRT_BASE
    XEN_NOTE_QUAD 1, _start                            ; ENTRY
    XEN_NOTE_QUAD 2, hypercall_page                    ; HYPERCALL_PAGE
    XEN_NOTE_STR 10, "!writable_page_tables|pae_pgdir_above_4gb" ; FEATURES
    XEN_NOTE_STR  9, "yes"                             ; PAE_MODE
    XEN_NOTE_STR  8, "generic"                         ; LOADER

section .text.head progbits alloc exec nowrite align=4096
extern pvtest_main
global _start
_start:
    cld
    lea rsp, [rel stack_top]
    xor ebp, ebp
    mov rdi, rsi                          ; start_info
    lea rsi, [rel pvtest_layout]
    call pvtest_main
    ; pvtest_main shuts the domain down; if it returns, crash through SCHEDOP_shutdown.
.crash:
    mov edi, 2                            ; SCHEDOP_shutdown
    lea rsi, [rel shutdown_crash]
    mov eax, 29                           ; __HYPERVISOR_sched_op
    syscall
    jmp .crash

align 4096
global hypercall_page
hypercall_page:
    times 4096 db 0xCC                    ; filled by the hypervisor

section .rodata
shutdown_crash: dd 3                      ; SHUTDOWN_crash

section .data
global __security_cookie
align 8
__security_cookie: dq 0x5E1F_0A7D_93C4_21B6   ; RyuJIT's stack cookie for methods with stackalloc

section .bss nobits alloc noexec write align=4096
global guest_pages, guest_pages_end, guest_heap, guest_heap_end
; Page-aligned pages the checks turn into page tables and mappings: zeroed by the loader.
guest_pages:     resb 52 * 4096           ; 20 for the checks; 20-51: the secondary vCPUs' stacks of pt-stress
guest_pages_end:
guest_heap:      resb 256 * 1024          ; the managed heap (statics)
guest_heap_end:
stack_bottom:    resb 64 * 1024
stack_top:

section .rodata
extern __modules_start, __modules_end, __image_start, __image_end
global pvtest_layout
align 8
; Read by Common/GuestLayout.cs: keep the two in the same order.
pvtest_layout:
    dq VIRT_BASE
    dq __image_start, __image_end
    dq __modules_start, __modules_end
    dq guest_heap, guest_heap_end
    dq guest_pages, guest_pages_end
    dq stack_bottom, stack_top
    dq hypercall_page

section .note.GNU-stack noalloc noexec nowrite progbits
