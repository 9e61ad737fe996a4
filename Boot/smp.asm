; Application processor start-up: the real-mode trampoline the kernel copies to a page below 1 MiB
; (Kernel/Smp/Processors.cs; the SIPI vector is that page's number), and the 64-bit entry it
; reaches. The trampoline goes real mode -> protected mode -> long mode on the boot stub's page
; tables (boot_pml4: identity map of the low 4 GiB and the image at KERNEL_VMA), jumps to
; ap_entry64 in the high half, which loads the kernel's own CR3/CR4/CR0 and stack and calls ap_main.
; Its parameter block sits at fixed offsets that Kernel/Smp/ApTrampoline.cs writes: keep the two in step.

%define TR(x) ((x) - ap_trampoline)

section .rodata
align 16
global ap_trampoline, ap_trampoline_end
bits 16
ap_trampoline:
    jmp short tr_start
    times 8 - ($ - ap_trampoline) db 0
tr_boot_cr3:  dd 0                        ; 0x08: boot_pml4 (physical, below 4 GiB)
tr_efer:      dd 0                        ; 0x0C: EFER to load (the BSP's: LME, NXE, SCE)
tr_cr3:       dq 0                        ; 0x10: the kernel's page tables
tr_cr4:       dq 0                        ; 0x18
tr_cr0:       dq 0                        ; 0x20
tr_stack:     dq 0                        ; 0x28: this AP's stack top
tr_cpu:       dq 0                        ; 0x30: this AP's CPU index, ap_main's argument
tr_entry:     dq ap_entry64               ; 0x38
tr_gdtr:      dw 0, 0, 0, 0               ; 0x40: filled in real mode (the page's address is known only there)
tr_far32:     dd 0, 0                     ; 0x48: offset, selector
tr_far64:     dd 0, 0                     ; 0x50
tr_gdt:                                   ; 0x58
    dq 0
    dq 0x00CF9A000000FFFF                 ; 0x08: 32-bit code
    dq 0x00CF92000000FFFF                 ; 0x10: data
    dq 0x00AF9A000000FFFF                 ; 0x18: 64-bit code
tr_start:
    cli
    cld
    xor eax, eax
    mov ax, cs
    mov ds, ax
    shl eax, 4
    mov ebx, eax                          ; linear address of this page, kept in EBX to the end
    lea eax, [ebx + TR(tr_gdt)]
    mov word [TR(tr_gdtr)], 4 * 8 - 1
    mov [TR(tr_gdtr) + 2], eax
    lea eax, [ebx + TR(tr_prot32)]
    mov [TR(tr_far32)], eax
    mov word [TR(tr_far32) + 4], 0x08
    lea eax, [ebx + TR(tr_long64)]
    mov [TR(tr_far64)], eax
    mov word [TR(tr_far64) + 4], 0x18
    o32 lgdt [TR(tr_gdtr)]
    mov eax, cr0
    or al, 1                              ; PE
    mov cr0, eax
    jmp far dword [TR(tr_far32)]

bits 32
tr_prot32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)   ; PAE, OSFXSR, OSXMMEXCPT
    mov cr4, eax
    mov eax, [ebx + TR(tr_boot_cr3)]
    mov cr3, eax
    mov ecx, 0xC0000080                   ; EFER
    mov eax, [ebx + TR(tr_efer)]
    xor edx, edx
    wrmsr
    mov eax, cr0
    and eax, ~(1 << 2)                    ; EM off: SSE as on the BSP
    or eax, (1 << 31) | (1 << 1) | 1      ; PG, MP, PE
    mov cr0, eax
    jmp far [ebx + TR(tr_far64)]

bits 64
tr_long64:
    mov ebx, ebx
    mov rax, [rbx + TR(tr_entry)]
    jmp rax
ap_trampoline_end:

section .text
bits 64
extern ap_main
; RBX: the trampoline page (still identity-mapped by the boot tables). Everything it holds is read
; before CR3 changes, since the kernel's own tables do not map low memory there.
ap_entry64:
    mov rdi, [rbx + TR(tr_cpu)]
    mov rsp, [rbx + TR(tr_stack)]
    mov rcx, [rbx + TR(tr_cr4)]
    mov rdx, [rbx + TR(tr_cr0)]
    mov rax, [rbx + TR(tr_cr3)]
    mov cr4, rcx
    mov cr3, rax
    mov cr0, rdx
    fninit
    xor ebp, ebp
    call ap_main
.halt:
    cli
    hlt
    jmp .halt

global ap_trampoline_address, ap_trampoline_size
ap_trampoline_address:
    lea rax, [rel ap_trampoline]
    ret
ap_trampoline_size:
    mov eax, ap_trampoline_end - ap_trampoline
    ret

section .note.GNU-stack noalloc noexec nowrite progbits

; The hypervisor's lock (docs/smp.md): one processor at a time runs the hypervisor, from the entry of a
; trap, hypercall or interrupt to its exit. A test-and-test-and-set lock (not a ticket lock: under an
; emulator a waiting virtual processor may be descheduled by the host, and a ticket would wait for it).
; While it waits, a processor answers the TLB-flush requests sent to it (its block's PCPU_FLUSH_REQUEST,
; Kernel/Smp/CpuBlock.cs): the holder may be waiting for exactly that, with this processor's interrupts off.
%define PCPU_INDEX         32
%define PCPU_FLUSH_REQUEST 48
%define PCPU_LOCK_WAITS    56
%define PCPU_LOCK_SPINS    64
section .text
global hv_lock_acquire, hv_lock_release, hv_flush_answer
extern hv_lock_reentered
hv_lock_acquire:
    mov edx, [gs:PCPU_INDEX]
    inc edx                               ; the holder's index + 1 (0: free), for a debugger's eyes
.try:
    xor eax, eax
    lock cmpxchg [rel hv_lock_word], edx
    je .taken
    cmp eax, edx
    je .again                             ; this processor holds it already: a bug, reported
    inc qword [gs:PCPU_LOCK_WAITS]
.wait:
    cmp qword [gs:PCPU_FLUSH_REQUEST], 0
    jne .flush
    inc qword [gs:PCPU_LOCK_SPINS]
    pause
    cmp dword [rel hv_lock_word], 0
    jne .wait
    jmp .try
.flush:
    call hv_flush_answer
    jmp .wait
.taken:
    ret
.again:
    jmp hv_lock_reentered
hv_lock_release:
    mov dword [rel hv_lock_word], 0
    ret

; Answers this processor's TLB-flush request, if any: the whole TLB (a CR3 reload; guests' leaves are
; never global), then the request word cleared, which the requester waits for.
hv_flush_answer:
    cmp qword [gs:PCPU_FLUSH_REQUEST], 0
    je .none
    mov rax, cr3
    mov cr3, rax
    mov qword [gs:PCPU_FLUSH_REQUEST], 0
.none:
    ret

; Kernel/Runtime/Threading.cs's out-of-line atomics (RyuJIT normally expands them in place):
; rdi = location, rsi = value, rdx = comparand; each returns the location's previous value.
global atomic_cmpxchg32, atomic_cmpxchg64, atomic_xadd64
atomic_cmpxchg32:
    mov eax, edx
    lock cmpxchg [rdi], esi
    ret
atomic_cmpxchg64:
    mov rax, rdx
    lock cmpxchg [rdi], rsi
    ret
atomic_xadd64:
    mov rax, rsi
    lock xadd [rdi], rax
    ret

section .data
align 64
hv_lock_word: dd 0
align 64, db 0
section .note.GNU-stack noalloc noexec nowrite progbits
