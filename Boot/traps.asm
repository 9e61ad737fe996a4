; Interrupt and exception entry: one stub per vector pushes a uniform frame
; (Kernel/Traps/TrapFrame.cs) and calls the C# dispatcher with FPU/SSE state saved around it: a
; trap from a guest goes to the hypervisor's guest entry (PvCpu), one from the hypervisor's own
; contexts to the kernel's dispatcher (TrapDispatch).
bits 64
section .text
extern trap_dispatch
extern guest_trap_dispatch
extern syscall_dispatch
extern stack_top

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
  %if v == 1
    ; #DB: isr1 below
  %elif v == 8 || v == 10 || v == 11 || v == 12 || v == 13 || v == 14 || v == 17 || v == 21 || v == 29 || v == 30
    ISR_ERR v
  %else
    ISR_NOERR v
  %endif
  %assign v v+1
%endrep

; Frame offsets from RBP (Kernel's TrapFrame): 15 registers, vector, error code, then the CPU's part.
%define F_RCX     12*8
%define F_R11     4*8
%define F_VECTOR  15*8
%define F_RIP     17*8
%define F_CS      18*8
%define F_RSP     20*8
%define EXIT_FAULT_FLAG 0x200             ; TrapFrame.ExitFaultFlag: a guest trap raised by the exit's IRETQ

; Each CPU's block (Kernel/Smp/CpuBlock.cs, same offsets), reached through GS: in ring 0 GS_BASE
; is the block; while a guest runs, the guest's GS base is loaded and the block waits in
; KERNEL_GS_BASE, so every entry from ring 3 begins with SWAPGS and every exit to ring 3 ends with
; one (Xen's entry.S). PvCpu reads and writes it through cpu_* below.
%define PCPU_SCRATCH_RSP  0                ; the guest RSP while SYSCALL builds the frame
%define PCPU_STACK_TOP    8                ; where a SYSCALL frame starts (TSS.RSP0's value)
%define PCPU_FPU_LOAD     16               ; an FXSAVE image to load on the way out (a vCPU switch), or 0
%define PCPU_CR0_TS       24               ; CR0.TS is set now (we left to a guest with it)
%define PCPU_INDEX        32               ; this CPU's index (Processors.Cpus)
%define PCPU_IDLE_TOP     40               ; the idle loop's stack top
                                           ; 48: PCPU_FLUSH_REQUEST (Boot/smp.asm)
%define DR6_DEFAULT       0xFFFF0FF0

%macro PUSH_GPRS 0
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
%endmacro

%macro POP_GPRS 0                         ; PUSH_GPRS undone
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
%endmacro

; A guest that asked for CR0.TS (fpu_taskswitch) ran with it set: clear it before touching SSE,
; so no FPU use of the hypervisor's ever raises #NM or is charged to the guest. Then save the
; guest's xmm0 and xmm8, the only SSE registers the C# code uses.
%macro GUEST_FPU_ENTRY 0
    cmp byte [gs:PCPU_CR0_TS], 0
    je %%ts_clear
    clts
    mov byte [gs:PCPU_CR0_TS], 0
%%ts_clear:
    sub rsp, 32
    movdqa [rsp], xmm0
    movdqa [rsp + 16], xmm8
%endmacro

align 16
trap_common:
    PUSH_GPRS
    mov rbp, rsp
    cld
    test byte [rbp + F_CS], 3
    jz trap_from_hypervisor
trap_from_guest_swapgs:
    swapgs                                ; the guest's GS base to KERNEL_GS_BASE, this CPU's block to GS
trap_from_guest:                          ; (isr1 joins here, GS already swapped)
    ; From a guest. The C# code clobbers the SysV scratch registers (pushed above; the callee-saved
    ; ones are in the frame because iret and vCPU switches rewrite them) and, of the SSE state, only
    ; xmm0 and xmm8 (Tests/Microhv.Tests/Qemu/ImageFpuUseTests.cs checks the image): save those two,
    ; not a 512-byte FXSAVE. The guest's full FPU state moves only at a vCPU switch (PvCpu).
    GUEST_FPU_ENTRY
    mov rdi, rbp                          ; TrapFrame*
    mov rsi, rsp                          ; the saved xmm0, xmm8 (PvCpu swaps them at a vCPU switch)
    mov edx, [gs:PCPU_INDEX]
    call guest_trap_dispatch              ; the hypervisor's guest trap entry (PvCpu); exit bits (below)
    ; The exit bits the C# entry returns in EAX (Hypervisor/Traps/GuestExit.cs, ExitActions.StubOnly):
    ; bit 0 leave by SYSRET (the frame is one it restores exactly), bit 1 leave with CR0.TS set.
guest_exit:
    mov rdx, [gs:PCPU_FPU_LOAD]
    test rdx, rdx
    jnz exit_fpu_load
    movdqa xmm0, [rsp]
    movdqa xmm8, [rsp + 16]
exit_fpu_loaded:
    test al, 2
    jz exit_ts_done
    mov rcx, cr0
    or rcx, 8                             ; CR0.TS: the guest's next FPU use raises #NM
    mov cr0, rcx
    mov byte [gs:PCPU_CR0_TS], 1
exit_ts_done:
    mov rsp, rbp
    test al, 1
    jnz exit_sysret
exit_restore:
    POP_GPRS
    test byte [rsp + 24], 3               ; the frame's CS (after vector and error code, RIP)
    jz exit_iretq_to_hypervisor
    swapgs                                ; to a guest: its GS base back, the block to KERNEL_GS_BASE
    add rsp, 16
exit_iretq_to_guest:                      ; its fault is the guest's: exit_iretq_faulted
    iretq
exit_iretq_to_hypervisor:
    add rsp, 16
    iretq

    ; The hypervisor's own contexts (boot, self-tests, the idle loop): the whole FPU state is saved,
    ; since kernel code interrupted there may be using any of it.
trap_from_hypervisor:
    lea rax, [rel exit_iretq_to_guest]
    cmp [rbp + F_RIP], rax
    je exit_iretq_faulted                 ; (the guest's RAX is in the frame)
trap_in_hypervisor:
    sub rsp, 512
    and rsp, -16
    fxsave [rsp]
    mov rdi, rbp
    xor esi, esi                          ; no guest xmm save area
    call trap_dispatch
    mov rdx, [gs:PCPU_FPU_LOAD]
    test rdx, rdx
    jnz exit_fpu_load
    fxrstor [rsp]
    mov rsp, rbp
    test al, 1
    jnz exit_sysret
    jmp exit_restore

    ; A vCPU switch: the next vCPU's whole FPU state, loaded last so no C# code runs after it
    ; (EAX, the exit bits, survives).
exit_fpu_load:
    fxrstor [rdx]
    mov qword [gs:PCPU_FPU_LOAD], 0
    test byte [rbp + F_CS], 3
    jnz exit_fpu_loaded
    mov rsp, rbp                          ; to the idle loop (ring 0): no CR0.TS to set
    jmp exit_restore

    ; The IRETQ to a guest faulted: the CPU refused a CS, SS or RIP the guest chose (HYPERVISOR_iret
    ; does not check them; update_descriptor can make a loaded selector's descriptor not present).
    ; As Xen 4.17 does (entry.S, the .Lft0 fixup into handle_exception) this is the guest's own exception
    ; at the IRETQ's target: the frame the IRETQ was popping (RIP, CS, RFLAGS, RSP, SS) gets this
    ; vector and error code below it, and the guest's registers (restored before the IRETQ, saved again
    ; by this trap) below those, and it goes the way of every guest trap, marked with
    ; TrapFrame.ExitFaultFlag (Hypervisor/Traps/ExitFault.cs decides). Only #NP, #SS, #GP and #PF (a CS or
    ; SS of the vCPU's LDT whose page is mapped on demand: Hypervisor/Mm/LdtShadow.cs): an NMI or #MC at
    ; this RIP is no fault of the IRETQ's. GS is the guest's here: trap_from_guest swaps it back.
exit_iretq_faulted:
    mov rax, [rbp + F_VECTOR]
    cmp rax, 11
    jb trap_in_hypervisor
    cmp rax, 14
    ja trap_in_hypervisor
    mov rsi, [rbp + F_RSP]                ; the IRETQ's RSP: the guest's RIP, CS, RFLAGS, RSP, SS
    mov rcx, [rbp + F_VECTOR + 8]
    or rax, EXIT_FAULT_FLAG
    mov [rsi - 16], rax                   ; vector
    mov [rsi - 8], rcx                    ; error code
    mov ecx, 15
.move:                                    ; the 15 saved registers, highest first: the new place is higher
    mov rax, [rbp + rcx * 8 - 8]
    mov [rsi + rcx * 8 - 8 - 16 - 15 * 8], rax
    dec ecx
    jnz .move
    lea rbp, [rsi - 16 - 15 * 8]
    mov rsp, rbp
    jmp trap_from_guest_swapgs

    ; SYSRET when GuestExit.CanSysret holds: the frame's RCX is its RIP, R11 its RFLAGS, CS and SS the
    ; flat 64-bit ring-3 selectors SYSRET loads, RIP canonical. Interrupts stay masked until SYSRET
    ; (RFLAGS comes from R11); an NMI in between runs on its IST stack, not the guest's.
exit_sysret:
    POP_GPRS
    mov rsp, [rsp + F_RSP - F_VECTOR]
    swapgs
    o64 sysret

; #DB runs on its own stack (IST4) and trusts neither RSP nor GS: a guest's MOV SS or POP SS delays a
; data breakpoint's #DB past the next instruction, so after SYSCALL (or INT n) it arrives at CPL 0 on
; the first instruction of the entry, before its SWAPGS, on the guest's RSP (Xen's XSA-260). And the
; hypervisor itself trips the guest's data breakpoints when it reads or writes guest memory.
;  - From the guest (CPL 3): GS is the guest's for certain. The CPU's frame moves to this CPU's normal
;    stack, where every other trap from a guest starts, and it goes on as any guest exception (vector
;    1, bounced to the guest's handler: PvCpu reads DR6), so the IST stack is free again for a #DB the
;    hypervisor takes while it handles this one.
;  - From the hypervisor (CPL 0): GS may be either; nothing here uses it, nor any C# code. Like Xen's
;    do_debug in hypervisor context the event is dropped: DR6 is reset, TF cleared in the interrupted
;    frame, and an instruction breakpoint (which the checks on DR0-3 make impossible here, and which
;    would fire again at once) turns DR7 off; a data breakpoint is a trap, already past. Counted.
global isr1
align 16
isr1:
    test byte [rsp + 8], 3                ; the interrupted CS
    jz .from_hypervisor
    swapgs                                ; the guest's GS base to KERNEL_GS_BASE, this CPU's block to GS
    push rax
    push rcx
    ; Here: [rsp] rcx, +8 rax, +16 RIP, +24 CS, +32 RFLAGS, +40 RSP, +48 SS.
    mov rax, [gs:PCPU_STACK_TOP]
    mov rcx, [rsp + 48]
    mov [rax - 8], rcx                    ; SS
    mov rcx, [rsp + 40]
    mov [rax - 16], rcx                   ; RSP
    mov rcx, [rsp + 32]
    mov [rax - 24], rcx                   ; RFLAGS
    mov rcx, [rsp + 24]
    mov [rax - 32], rcx                   ; CS
    mov rcx, [rsp + 16]
    mov [rax - 40], rcx                   ; RIP
    mov qword [rax - 48], 0               ; error code
    mov qword [rax - 56], 1               ; vector
    lea rcx, [rax - 56]
    mov rax, [rsp + 8]
    xchg rcx, [rsp]                       ; the guest's RCX back, the new stack pointer in its slot
    mov rsp, [rsp]
    PUSH_GPRS
    mov rbp, rsp
    cld
    jmp trap_from_guest
.from_hypervisor:
    push rax
    push rcx
    push rdx
    push r8
    push r9
    mov rax, dr6
    mov ecx, DR6_DEFAULT
    mov dr6, rcx
    test eax, 0xF                         ; B0-B3: a breakpoint matched
    jz .step
    mov r8, dr7
    xor edx, edx
.breakpoint:
    bt eax, edx
    jnc .next
    lea ecx, [rdx * 2]
    mov r9, r8
    shr r9, cl
    test r9d, 3                           ; L/G enable of breakpoint n
    jz .next
    lea ecx, [rdx * 4 + 16]
    mov r9, r8
    shr r9, cl
    test r9d, 3                           ; R/W of breakpoint n: 00 is an instruction breakpoint
    jnz .next
    xor ecx, ecx
    mov dr7, rcx
    jmp .step
.next:
    inc edx
    cmp edx, 4
    jb .breakpoint
.step:
    and qword [rsp + 5 * 8 + 16], ~0x100  ; TF off in the interrupted RFLAGS
    lock inc qword [rel debug_in_hypervisor]
    pop r9
    pop r8
    pop rdx
    pop rcx
    pop rax
    iretq

; SYSCALL from a paravirtualized guest kernel (ring 3): the hypercall entry. SYSCALL does not
; switch stacks, so take the hypervisor stack (this CPU's block), build the same frame an
; interrupt from ring 3 would (SS, RSP, RFLAGS=R11, CS, RIP=RCX), mark it with vector 0x100, call
; the hypervisor's syscall entry directly with this CPU's index and leave through the guest exit
; path (SYSRET when it can). Interrupts are masked by SFMASK on entry: the scratch slot is safe.
global syscall_entry
align 16
syscall_entry:
    swapgs
    mov [gs:PCPU_SCRATCH_RSP], rsp
    mov rsp, [gs:PCPU_STACK_TOP]
    push qword 0xE02B                     ; FLAT_RING3_SS64
    push qword [gs:PCPU_SCRATCH_RSP]
    push r11                              ; RFLAGS
    push qword 0xE033                     ; FLAT_RING3_CS64
    push rcx                              ; RIP
    push 0                                ; error code
    push 0x100                            ; TrapFrame.SyscallVector
    PUSH_GPRS
    mov rbp, rsp
    cld
    GUEST_FPU_ENTRY
    mov rdi, rbp
    mov rsi, rsp
    mov edx, [gs:PCPU_INDEX]
    call syscall_dispatch                 ; straight to the hypervisor's syscall entry (PvCpu); exit bits in EAX
    jmp guest_exit

; Starts the idle loop on its own stack (the scheduler's "no vCPU runnable" context).
extern hv_idle
global idle_entry
idle_entry:
    mov rsp, [gs:PCPU_IDLE_TOP]
    xor ebp, ebp
    call hv_idle
.spin:
    hlt
    jmp .spin

section .data
align 8
global debug_in_hypervisor
debug_in_hypervisor: dq 0                 ; #DBs taken in the hypervisor's own context and dropped (isr1)
align 64
global cpu0_block
cpu0_block:
    dq 0                                  ; PCPU_SCRATCH_RSP
    dq stack_top                          ; PCPU_STACK_TOP: the boot stack, TSS.RSP0's value
    dq 0                                  ; PCPU_FPU_LOAD
    db 0                                  ; PCPU_CR0_TS
    align 8, db 0
    dq 0                                  ; PCPU_INDEX
    dq idle_stack_top                     ; PCPU_IDLE_TOP
    dq 0                                  ; PCPU_FLUSH_REQUEST (48)
    dq 0, 0                               ; the lock's waits and spins (56, 64)
    align 128, db 0

section .bss nobits alloc noexec write align=4096
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
global debug_in_hypervisor_count
debug_in_hypervisor_count:
    mov rax, [rel debug_in_hypervisor]
    ret
global cpu0_block_address, cpu_index
cpu0_block_address:
    lea rax, [rel cpu0_block]
    ret
; The calling CPU's index, from its block (ring 0: GS_BASE is the block).
cpu_index:
    mov eax, [gs:PCPU_INDEX]
    ret

; The FXSAVE image (16-byte aligned) the exit path loads: the vCPU switched to.
global cpu_set_exit_fpu
cpu_set_exit_fpu:
    mov [gs:PCPU_FPU_LOAD], rdi
    ret

; Saves the whole FPU/SSE state to a 16-byte-aligned 512-byte area (CR0.TS is clear in the hypervisor).
global cpu_fxsave
cpu_fxsave:
    fxsave [rdi]
    ret

