; The fuzzer's privileged and faulting instructions, one probe each: ulong fuzz_probe(ulong which,
; ulong a, ulong b, ulong c). A probe that traps never returns: the trap handler abandons the call
; through guest_check_abort (Common/guest.asm), so probes need no fixed lengths.
bits 64
section .text

%define PROBES 77

global fuzz_probe
fuzz_probe:
    cmp rdi, PROBES
    jae .none
    lea rax, [rel probe_table]
    mov rax, [rax + rdi * 8]
    mov r11, rdx                          ; b
    mov r10, rcx                          ; c
    jmp rax
.none:
    xor eax, eax
    ret

p_hlt:      hlt
            ret
p_cli:      cli
            ret
p_sti:      sti
            ret
p_inb:      mov rdx, rsi
            in al, dx
            ret
p_outb:     mov rdx, rsi
            mov rax, r11
            out dx, al
            ret
p_ind:      mov rdx, rsi
            in eax, dx
            ret
p_outd:     mov rdx, rsi
            mov rax, r11
            out dx, eax
            ret
p_insb:     push rdi                      ; rep insb: port a, destination b, count c
            mov rdx, rsi
            mov rdi, r11
            mov rcx, r10
            rep insb
            pop rdi
            cld
            ret
p_outsb:    push rsi                      ; rep outsb: port a, source b, count c
            mov rdx, rsi
            mov rsi, r11
            mov rcx, r10
            rep outsb
            pop rsi
            ret
p_rdmsr:    mov rcx, rsi
            rdmsr
            ret
p_wrmsr:    mov rcx, rsi
            mov rax, r11
            mov rdx, r11
            shr rdx, 32
            wrmsr
            ret
p_rdcr0:    mov rax, cr0
            ret
p_wrcr0:    mov cr0, rsi
            ret
p_rdcr3:    mov rax, cr3
            ret
p_wrcr3:    mov cr3, rsi
            ret
p_wrcr4:    mov cr4, rsi
            ret
p_rdcr4:    mov rax, cr4
            ret
p_lgdt:     lgdt [rsi]
            ret
p_lidt:     lidt [rsi]
            ret
p_sgdt:     sgdt [rsi]
            ret
p_sidt:     sidt [rsi]
            ret
p_lldt:     lldt si
            ret
p_ltr:      ltr si
            ret
p_str:      str ax
            ret
p_smsw:     smsw ax
            ret
p_invlpg:   invlpg [rsi]
            ret
p_wbinvd:   wbinvd
            ret
p_invd:     invd
            ret
p_clts:     clts
            ret
p_int3:     int3
            ret
p_int80:    int 0x80
            ret
p_int1:     int 0x01
            ret
p_int0e:    int 0x0e
            ret
p_intff:    int 0xff
            ret
p_int20:    int 0x20
            ret
p_ud2:      ud2
            ret
p_div0:     xor ecx, ecx
            mov eax, 1
            xor edx, edx
            div rcx
            ret
p_read:     mov rax, [rsi]
            ret
p_write:    mov [rsi], r11
            ret
p_iretq:    mov rax, rsp                  ; iretq to .back with CS a and SS b (a wrong one is #GP)
            push r11
            push rax
            pushfq
            push rsi
            lea rax, [rel .back]
            push rax
            iretq
.back:      ret
p_swapgs:   swapgs
            ret
p_sysret:   o64 sysret
p_sysenter: sysenter
            ret
p_rdpmc:    mov rcx, rsi
            rdpmc
            ret
p_rdtscp:   rdtscp
            ret
p_xsetbv:   mov rcx, rsi
            mov rax, r11
            mov rdx, r11
            shr rdx, 32
            xsetbv
            ret
p_xgetbv:   mov rcx, rsi
            xgetbv
            ret
p_monitor:  mov rax, rsi
            xor ecx, ecx
            xor edx, edx
            monitor
            ret
p_mwait:    xor eax, eax
            xor ecx, ecx
            mwait
            ret
p_wrdr7:    mov dr7, rsi
            ret
p_rddr6:    mov rax, dr6
            ret
p_wrdr0:    mov dr0, rsi
            ret
p_movss:    mov ss, si
            ret
p_movds:    mov ds, si
            xor eax, eax
            mov ds, ax
            ret
p_moves:    mov es, si
            xor eax, eax
            mov es, ax
            ret
p_lar:      lar rax, si
            ret
p_verw:     verw si
            ret
p_xcpuid:   push rbx                      ; Xen's forced-emulation cpuid, leaf a, subleaf b
            mov rax, rsi
            mov rcx, r11
            db 0x0f, 0x0b, 'x', 'e', 'n'
            cpuid
            pop rbx
            ret
p_cpuid:    push rbx
            mov rax, rsi
            mov rcx, r11
            cpuid
            pop rbx
            ret
p_popf:     push r11                      ; rflags b (the caller clears AC, DF and NT)
            popfq
            ret
p_lmsw:     lmsw si
            ret
p_wrcr8:    mov cr8, rsi
            ret
p_vmcall:   vmcall
            ret
p_vmmcall:  vmmcall
            ret
p_jmp:      jmp rsi                       ; to a non-canonical, unmapped or hypervisor address
p_icebp:    db 0xf1                       ; int1
            ret
p_into:     db 0xce                       ; into: #UD in 64-bit mode
            ret
p_lockud:   db 0xf0                       ; lock nop: #UD
            nop
            ret
p_callfar:  mov [rsp - 16], rsi           ; far call through selector a (a call gate or junk)
            mov qword [rsp - 24], 0
            call far [rsp - 24]
            ret
p_retf:     lea rax, [rel .back]          ; far return to CS a
            push rsi
            push rax
            o64 retf
.back:      ret
p_intxx:    mov rax, r11                  ; int 0x82, the trap-based hypercall entry, with RAX=b (chosen harmless)
            mov rdi, rsi
            int 0x82
            ret
p_rdtsc:    rdtsc
            ret
p_rdfsbase: rdfsbase rax
            ret
p_pause:    pause
            ret
p_wrfsbase: wrfsbase rsi                  ; with CR4.FSGSBASE (a random CR4 write may set it on -cpu max)
            ret
p_rdgsbase: rdgsbase rax
            ret
p_wrgsbase: wrgsbase rsi
            ret

section .rodata
align 8
probe_table:
    dq p_hlt, p_cli, p_sti, p_inb, p_outb, p_ind, p_outd, p_insb
    dq p_outsb, p_rdmsr, p_wrmsr, p_rdcr0, p_wrcr0, p_rdcr3, p_wrcr3, p_wrcr4
    dq p_rdcr4, p_lgdt, p_lidt, p_sgdt, p_sidt, p_lldt, p_ltr, p_str
    dq p_smsw, p_invlpg, p_wbinvd, p_invd, p_clts, p_int3, p_int80, p_int1
    dq p_int0e, p_intff, p_int20, p_ud2, p_div0, p_read, p_write, p_iretq
    dq p_swapgs, p_sysret, p_sysenter, p_rdpmc, p_rdtscp, p_xsetbv, p_xgetbv, p_monitor
    dq p_mwait, p_wrdr7, p_rddr6, p_wrdr0, p_movss, p_movds, p_moves, p_lar
    dq p_verw, p_xcpuid, p_cpuid, p_popf, p_lmsw, p_wrcr8, p_vmcall, p_vmmcall
    dq p_jmp, p_icebp, p_into, p_lockud, p_callfar, p_retf, p_intxx, p_rdtsc
    dq p_rdfsbase, p_pause, p_wrfsbase, p_rdgsbase, p_wrgsbase

section .text
; long fuzz_int82(ulong nr, ulong a1, a2, a3, a4, a5): a hypercall through the INT 0x82 trap gate.
global fuzz_int82
fuzz_int82:
    mov rax, rdi
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    mov r10, r8
    mov r8, r9
    int 0x82
    ret

section .note.GNU-stack noalloc noexec nowrite progbits

section .text
; long fuzz_fenced_hypercall(ulong* call {nr, a1..a5}, ulong trapTable): the call, then at once
; fpu_taskswitch(0), set_trap_table(NULL) and set_trap_table(trapTable), before any compiled code can
; raise #NM or another trap: the call may have cleared the table (set_trap_table(NULL) does), set TS,
; or merged junk entries for other vectors (an INT n through one jumps anywhere, even into 32-bit code).
global fuzz_fenced_hypercall
fuzz_fenced_hypercall:
    push r12
    push r13
    push rbx
    mov r13, rsi
    mov rbx, rsp                          ; both ways back resume on this stack
    ; An iret context {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} at RSP: a multicall entry that
    ; is iret (a wild list can hold one) is performed as Xen does and ends the batch; it comes back
    ; here with our events still masked (IF clear) instead of jumping through stack junk.
    xor eax, eax
    mov ax, ss
    push rax                              ; ss
    push rbx                              ; rsp
    pushfq
    and qword [rsp], ~0x200               ; rflags, IF clear
    mov ax, cs
    and eax, ~3                           ; the guest kernel's frames carry RPL 0
    push rax                              ; cs
    lea rax, [rel .back]
    push rax                              ; rip
    push 0                                ; flags
    push 0                                ; rcx
    push 0                                ; r11
    push 0                                ; rax
    mov rax, [rdi]
    mov rsi, [rdi + 16]
    mov rdx, [rdi + 24]
    mov r10, [rdi + 32]
    mov r8, [rdi + 40]
    mov rdi, [rdi + 8]
    syscall
.back:
    mov rsp, rbx
    mov r12, rax
    mov eax, 5                            ; fpu_taskswitch(0)
    xor edi, edi
    syscall
    xor eax, eax                          ; set_trap_table(NULL): junk entries for other vectors go too
    xor edi, edi
    syscall
    xor eax, eax                          ; set_trap_table(ours)
    mov rdi, r13
    syscall
    mov rax, r12
    pop rbx
    pop r13
    pop r12
    ret
