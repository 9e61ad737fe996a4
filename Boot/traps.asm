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
    ; A guest that asked for CR0.TS (fpu_taskswitch) ran with it set: clear it before FXSAVE.
    cmp byte [rel guest_cr0_ts], 0
    je .ts_clear
    clts
    mov byte [rel guest_cr0_ts], 0
.ts_clear:
    sub rsp, 512
    and rsp, -16
    fxsave [rsp]
    mov rdi, rbp                          ; TrapFrame*
    mov rsi, rsp                          ; the interrupted context's FXSAVE area
    cld
    call trap_dispatch
    fxrstor [rsp]
    cmp byte [rel guest_cr0_ts_next], 0
    je .ts_done
    mov rax, cr0
    or rax, 8                             ; CR0.TS: the guest's next FPU use raises #NM
    mov cr0, rax
    mov byte [rel guest_cr0_ts], 1
.ts_done:
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

; SYSCALL from a paravirtualized guest kernel (ring 3): the hypercall entry. SYSCALL does not
; switch stacks, so take the hypervisor stack (TSS.RSP0's value, kept in hv_stack_top), build the
; same frame an interrupt from ring 3 would (SS, RSP, RFLAGS=R11, CS, RIP=RCX), mark it with
; vector 0x100 and join the common path, which returns with IRETQ. One CPU, interrupts masked
; by SFMASK on entry: the scratch slot is safe.
extern hv_stack_top
global syscall_entry
align 16
syscall_entry:
    mov [rel syscall_scratch_rsp], rsp
    mov rsp, [rel hv_stack_top]
    push qword 0xE02B                     ; FLAT_RING3_SS64
    push qword [rel syscall_scratch_rsp]
    push r11                              ; RFLAGS
    push qword 0xE033                     ; FLAT_RING3_CS64
    push rcx                              ; RIP
    push 0                                ; error code
    push 0x100                            ; TrapFrame.SyscallVector
    jmp trap_common

; Starts the idle loop on its own stack (the scheduler's "no vCPU runnable" context).
extern hv_idle
global idle_entry
idle_entry:
    lea rsp, [rel idle_stack_top]
    xor ebp, ebp
    call hv_idle
.spin:
    hlt
    jmp .spin

section .bss nobits alloc noexec write align=4096
syscall_scratch_rsp: resq 1
guest_cr0_ts:      resb 1                 ; CR0.TS is set now (we left to a guest with it)
global guest_cr0_ts_next
guest_cr0_ts_next: resb 1                 ; set CR0.TS when leaving this trap (PvCpu decides)
align 4096
global idle_stack_guard
idle_stack_guard: resb 4096
idle_stack:       resb 16384
global idle_stack_top
idle_stack_top:

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

section .text
global syscall_entry_address, idle_entry_address
syscall_entry_address:
    lea rax, [rel syscall_entry]
    ret
idle_entry_address:
    lea rax, [rel idle_entry]
    ret
global idle_stack_top_address
idle_stack_top_address:
    lea rax, [rel idle_stack_top]
    ret

global cpu_set_exit_cr0_ts
cpu_set_exit_cr0_ts:
    mov [rel guest_cr0_ts_next], dil
    ret
