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

section .rodata.ex_table
ex_table_end:

section .note.GNU-stack noalloc noexec nowrite progbits
