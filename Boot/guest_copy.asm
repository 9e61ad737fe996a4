; Loads, stores and copies at a running guest's virtual addresses (Kernel/Pv/GuestCopy.cs binds
; them; Xen's __copy_from_user/__copy_to_user). The guest's L4 is in CR3, so a plain instruction
; reaches its memory and the MMU checks it like the guest's own access (CR0.WP: a read-only entry
; faults for the hypervisor too). Every instruction here that touches guest memory is listed in the
; fault-fixup table (Xen's __ex_table): a #PF or #GP at one of them resumes at copy_fault, which
; returns 1 (the caller's -EFAULT) instead of crashing the hypervisor (Kernel/Traps/ExceptionFixup.cs).
; No routine pushes anything, so the fixup can return straight to the caller. Each returns 0 on success.
bits 64

; EX label: the instruction at label may fault on guest memory; resume at copy_fault.
%macro EX 1
section .rodata.ex_table
    dq %1, copy_fault
section .text
%endmacro

section .rodata.ex_table progbits alloc noexec nowrite align=8
ex_table_start:

section .text

%macro FN 1
global %1
%1:
%endmacro

; int guest_readN(ulong va (rdi), T* value (rsi))
FN guest_read8
.at: movzx eax, byte [rdi]
    mov [rsi], al
    xor eax, eax
    ret
    EX guest_read8.at
FN guest_read16
.at: movzx eax, word [rdi]
    mov [rsi], ax
    xor eax, eax
    ret
    EX guest_read16.at
FN guest_read32
.at: mov eax, [rdi]
    mov [rsi], eax
    xor eax, eax
    ret
    EX guest_read32.at
FN guest_read64
.at: mov rax, [rdi]
    mov [rsi], rax
    xor eax, eax
    ret
    EX guest_read64.at

; int guest_writeN(ulong va (rdi), T value (rsi))
FN guest_write8
.at: mov [rdi], sil
    xor eax, eax
    ret
    EX guest_write8.at
FN guest_write32
.at: mov [rdi], esi
    xor eax, eax
    ret
    EX guest_write32.at
FN guest_write64
.at: mov [rdi], rsi
    xor eax, eax
    ret
    EX guest_write64.at

; int guest_copy(void* dst (rdi), void* src (rsi), ulong length (rdx)): either side may be the
; guest's; words first, then the tail (the hypervisor runs with DF clear).
FN guest_copy
    mov rcx, rdx
    shr rcx, 3
.words: rep movsq
    mov ecx, edx
    and ecx, 7
.bytes: rep movsb
    xor eax, eax
    ret
    EX guest_copy.words
    EX guest_copy.bytes

copy_fault:
    mov eax, 1
    ret

FN ex_table_bounds                        ; void ex_table_bounds(ulong** start, ulong** end)
    lea rax, [rel ex_table_start]
    mov [rdi], rax
    lea rax, [rel ex_table_end]
    mov [rsi], rax
    ret

; int cpu_load_guest_selectors(ushort ds (di), ushort es (si), ushort fs (dx), ushort gs (cx), ulong gsBase (r8)):
; a vCPU's data-segment selectors at a switch (Xen's load_segments, Hypervisor/Traps/SegmentReload.cs). Each
; load is in the fixup table: one the CPU refuses (#GP, #NP, or a #PF of the LDT area whose page cannot be
; mapped) loads the null selector instead and sets its bit in the result (1 DS, 2 ES, 4 FS, 8 GS). Loading
; GS in ring 0 replaces GS_BASE, this processor's block: written back from gsBase before anything uses it.
FN cpu_load_guest_selectors
    xor eax, eax
    xor r9d, r9d
.ds: mov ds, edi
.es: mov es, esi
.fs: mov fs, edx
.gs: mov gs, ecx
.base:
    mov r10d, eax
    mov ecx, 0xC0000101                   ; GS_BASE
    mov eax, r8d
    mov rdx, r8
    shr rdx, 32
    wrmsr
    mov eax, r10d
    ret
.ds_refused:
    or eax, 1
    mov ds, r9d
    jmp .es
.es_refused:
    or eax, 2
    mov es, r9d
    jmp .fs
.fs_refused:
    or eax, 4
    mov fs, r9d
    jmp .gs
.gs_refused:
    or eax, 8
    mov gs, r9d
    jmp .base

; ulong cpu_load_user_gs(ushort selector (di), ulong gsBase (si)): set_segment_base(SEGBASE_GS_USER_SEL) loads the
; user GS selector as Xen's do_set_segment_base does (Hypervisor/Traps/SetSegmentBase.cs) and returns the base the
; load gave, read from GS_BASE; a selector the CPU refuses (in the fault-fixup table) loads null and gives 0.
; GS_BASE, this processor's block, is written back from gsBase; the guest's GS base waits in KERNEL_GS_BASE.
FN cpu_load_user_gs
.load:
    mov gs, edi
    mov ecx, 0xC0000101                   ; GS_BASE
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov r8, rax
.base:
    mov ecx, 0xC0000101
    mov eax, esi
    mov rdx, rsi
    shr rdx, 32
    wrmsr
    mov rax, r8
    ret
.refused:
    xor r8d, r8d
    mov gs, r8d
    jmp .base

section .rodata.ex_table
    dq cpu_load_user_gs.load, cpu_load_user_gs.refused
    dq cpu_load_guest_selectors.ds, cpu_load_guest_selectors.ds_refused
    dq cpu_load_guest_selectors.es, cpu_load_guest_selectors.es_refused
    dq cpu_load_guest_selectors.fs, cpu_load_guest_selectors.fs_refused
    dq cpu_load_guest_selectors.gs, cpu_load_guest_selectors.gs_refused
section .text

section .rodata.ex_table
ex_table_end:

section .note.GNU-stack noalloc noexec nowrite progbits
