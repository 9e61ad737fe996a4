; Interrupt and exception entry: one stub per vector pushes a uniform frame
; (Kernel/Traps/TrapFrame.cs) and calls the C# dispatcher with FPU/SSE state saved around it.
bits 64
section .text
extern trap_dispatch

%macro ISR_NOERR 1
isr%1:
    push 0
    push %1
    jmp trap_common
%endmacro
%macro ISR_ERR 1
isr%1:
    push %1
    jmp trap_common
%endmacro

%assign v 0
%rep 256
  %if v == 8 || v == 10 || v == 11 || v == 12 || v == 13 || v == 14 || v == 17 || v == 21 || v == 29 || v == 30
    ISR_ERR v
  %else
    ISR_NOERR v
  %endif
  %assign v v+1
%endrep

align 16
trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rbp, rsp
    sub rsp, 512
    and rsp, -16
    fxsave [rsp]
    mov rdi, rbp
    cld
    call trap_dispatch
    fxrstor [rsp]
    mov rsp, rbp
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

section .rodata
align 8
global isr_table
isr_table:
%assign v 0
%rep 256
    dq isr %+ v
  %assign v v+1
%endrep

section .note.GNU-stack noalloc noexec nowrite progbits

section .text
global isr_table_address
isr_table_address:
    lea rax, [rel isr_table]
    ret
