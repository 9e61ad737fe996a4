; Paravirt operations (docs/abi-rom.md §9). Every operation has a stub, pv_<name>, at
; paravirt_stubs + 8 * call number: C# calls it through a RuntimeImport (Paravirt.cs), so each use is a
; direct `call pv_<name>` (or a tail `jmp`) in the compiled code. Unpatched, the stub jumps through
; the operation's slot (the pv_ops function pointer the backend bound). At load, Patcher.cs rewrites
; every recorded site (pvsites.sh lists them from the linker's relocations) into the native bytes,
; NOPs or a direct call to the slot's target, so the stubs only serve calls made before patching.
bits 64

%define PV_CALLS 128

%macro PVOP 2-*
    global pv_%1
    pv_%1 equ paravirt_stubs + 8 * %2
%endmacro
%include "paravirt.inc"

section .text
align 8
global paravirt_stubs, paravirt_stubs_end
paravirt_stubs:
%assign n 0
%rep PV_CALLS
    jmp [rel paravirt_slots + 8 * n]
    align 8, int3
%assign n n + 1
%endrep
paravirt_stubs_end:

global paravirt_table_addresses
paravirt_table_addresses:                        ; void paravirt_table_addresses(ulong* out4): stubs, slots, sites, sites end
    extern paravirt_sites, paravirt_sites_end
    lea rax, [rel paravirt_stubs]
    mov [rdi], rax
    lea rax, [rel paravirt_slots]
    mov [rdi + 8], rax
    lea rax, [rel paravirt_sites]
    mov [rdi + 16], rax
    lea rax, [rel paravirt_sites_end]
    mov [rdi + 24], rax
    ret

section .data
align 8
global paravirt_slots
paravirt_slots: times PV_CALLS dq 0

section .note.GNU-stack noalloc noexec nowrite progbits
