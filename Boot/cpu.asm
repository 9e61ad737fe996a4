; The CPU instructions C# cannot express, as SysV-callable functions (Kernel/Cpu.cs binds them).
bits 64
section .text

%macro FN 1
global %1
%1:
%endmacro

FN cpu_inb
    mov edx, edi
    in al, dx
    movzx eax, al
    ret
FN cpu_inw
    mov edx, edi
    in ax, dx
    movzx eax, ax
    ret
FN cpu_ind
    mov edx, edi
    in eax, dx
    ret
FN cpu_outb
    mov edx, edi
    mov eax, esi
    out dx, al
    ret
FN cpu_outw
    mov edx, edi
    mov eax, esi
    out dx, ax
    ret
FN cpu_outd
    mov edx, edi
    mov eax, esi
    out dx, eax
    ret
FN cpu_read_cr0
    mov rax, cr0
    ret
FN cpu_read_cr2
    mov rax, cr2
    ret
FN cpu_read_cr3
    mov rax, cr3
    ret
FN cpu_read_cr4
    mov rax, cr4
    ret
FN cpu_write_cr0
    mov cr0, rdi
    ret
FN cpu_write_cr3
    mov cr3, rdi
    ret
FN cpu_write_cr4
    mov cr4, rdi
    ret
; The debug registers a vCPU's breakpoints live in (Hypervisor/Traps/DebugRegisters.cs).
FN cpu_read_dr6
    mov rax, dr6
    ret
FN cpu_write_dr6
    mov dr6, rdi
    ret
FN cpu_write_dr7
    mov dr7, rdi
    ret
; void cpu_load_breakpoints(ulong dr0, dr1, dr2, dr3): the four breakpoint addresses.
FN cpu_load_breakpoints
    mov dr0, rdi
    mov dr1, rsi
    mov dr2, rdx
    mov dr3, rcx
    ret
FN cpu_rdmsr
    mov ecx, edi
    rdmsr
    shl rdx, 32
    or rax, rdx
    ret
FN cpu_wrmsr
    mov ecx, edi
    mov eax, esi
    mov rdx, rsi
    shr rdx, 32
    wrmsr
    ret
FN cpu_rdtsc
    rdtsc
    shl rdx, 32
    or rax, rdx
    ret
FN cpu_read_rflags
    pushfq
    pop rax
    ret
FN cpu_cli
    cli
    ret
FN cpu_sti
    sti
    ret
FN cpu_hlt
    hlt
    ret
; sti; hlt as a pair: an interrupt between them cannot be lost (STI's one-instruction shadow)
FN cpu_sti_hlt
    sti
    hlt
    ret
FN cpu_invlpg
    invlpg [rdi]
    ret
FN cpu_pause
    pause
    ret
; cpu_cpuid(leaf, subleaf, uint* out4)
FN cpu_cpuid
    push rbx
    mov eax, edi
    mov ecx, esi
    mov r8, rdx
    cpuid
    mov [r8], eax
    mov [r8 + 4], ebx
    mov [r8 + 8], ecx
    mov [r8 + 12], edx
    pop rbx
    ret
; cpu_lgdt(void* gdtr, ushort codeSelector, ushort dataSelector): load GDT, reload segments, and a null
; LDT: the LDTR the firmware leaves (QEMU: base 0, limit 0xFFFF) would let a guest's LDT selector (TI=1)
; name descriptors at linear address 0, which the guest maps itself, call gates into ring 0 included.
FN cpu_lgdt
    lgdt [rdi]
    xor eax, eax
    lldt ax
    mov ax, dx
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movzx rsi, si
    lea rax, [rel .reload]
    push rsi
    push rax
    retfq
.reload:
    ret
FN cpu_lidt
    lidt [rdi]
    ret
FN cpu_ltr
    ltr di
    ret
FN cpu_lldt
    lldt di
    ret
; void cpu_read_selectors(ushort* four): DS, ES, FS, GS as the CPU holds them (a guest's, in the hypervisor).
FN cpu_read_selectors
    mov eax, ds
    mov [rdi], ax
    mov eax, es
    mov [rdi + 2], ax
    mov eax, fs
    mov [rdi + 4], ax
    mov eax, gs
    mov [rdi + 6], ax
    ret
FN cpu_read_rsp
    lea rax, [rsp + 8]
    ret
FN cpu_int3
    int3
    ret

section .note.GNU-stack noalloc noexec nowrite progbits

section .text
; Destroys every SSE register and the x87 stack: the FPU self-test calls it from the timer
; interrupt to prove the trap path's FXSAVE/FXRSTOR really preserves the interrupted state.
global cpu_clobber_fpu
cpu_clobber_fpu:
    pcmpeqd xmm0, xmm0
    pcmpeqd xmm1, xmm1
    pcmpeqd xmm2, xmm2
    pcmpeqd xmm3, xmm3
    pcmpeqd xmm4, xmm4
    pcmpeqd xmm5, xmm5
    pcmpeqd xmm6, xmm6
    pcmpeqd xmm7, xmm7
    pcmpeqd xmm8, xmm8
    pcmpeqd xmm9, xmm9
    pcmpeqd xmm10, xmm10
    pcmpeqd xmm11, xmm11
    pcmpeqd xmm12, xmm12
    pcmpeqd xmm13, xmm13
    pcmpeqd xmm14, xmm14
    pcmpeqd xmm15, xmm15
    fninit
    ret

section .note.GNU-stack noalloc noexec nowrite progbits
