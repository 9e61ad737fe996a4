; Guest-side helpers C# cannot express: exception and event entry stubs that bounce back through
; the iret hypercall, a recovery point so one failing check cannot stop the others, and a few
; instructions the checks probe with. Common/Traps.cs and Common/Cpu.cs bind them.
bits 64
section .text

extern hypercall_page
extern guest_trap                          ; C#: void guest_trap(TrapFrame*)

%define HYPERVISOR_iret 23
%define VECTOR_EVENT    0x100
%define VECTOR_FAILSAFE 0x101

; The registers the System V ABI has a callee keep (guest_check_run and guest_user_call come back to C#).
%macro PUSH_CALLEE_SAVED 0
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
%endmacro
%macro POP_CALLEE_SAVED 0
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
%endmacro

; Xen bounces an exception with {rcx, r11, [error code], rip, cs, rflags, rsp, ss} on the stack.
; The stubs restore rcx/r11 and leave {vector, error code, rip, cs, rflags, rsp, ss}.
%macro TRAP_NOERR 1
global guest_trap_%1
guest_trap_%1:
    pop rcx
    pop r11
    push 0
    push %1
    jmp trap_common
%endmacro
%macro TRAP_ERR 1
global guest_trap_%1
guest_trap_%1:
    pop rcx
    pop r11
    push %1
    jmp trap_common
%endmacro

TRAP_NOERR 0
TRAP_NOERR 1
TRAP_NOERR 3
TRAP_NOERR 4
TRAP_NOERR 5
TRAP_NOERR 6
TRAP_NOERR 7
TRAP_ERR   10
TRAP_ERR   11
TRAP_ERR   12
TRAP_ERR   13
TRAP_ERR   14
TRAP_NOERR 16
TRAP_ERR   17
TRAP_NOERR 19

; The event upcall: {rcx, r11, rip, cs, rflags, rsp, ss}, events masked by the hypervisor.
global guest_event_callback
guest_event_callback:
    pop rcx
    pop r11
    push 0
    push VECTOR_EVENT
    jmp trap_common

; The failsafe callback: {rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss}; drop the segments.
global guest_failsafe_callback
guest_failsafe_callback:
    pop rcx
    pop r11
    add rsp, 32
    push 0
    push VECTOR_FAILSAFE
    jmp trap_common

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
    mov rdi, rsp
    mov rbp, rsp
    and rsp, -16
    cld
    call guest_trap
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
    add rsp, 16                           ; vector, error code
    ; {rip, cs, rflags, rsp, ss} + flags 0; the page's iret stub pushes rcx, r11, rax.
    push 0
    jmp hypercall_page + HYPERVISOR_iret * 32

; int guest_check_run(void (*check)(void)): runs one check; returns 0, or 1 if the trap handler
; abandoned it through guest_check_abort (an unexpected fault).
global guest_check_run, guest_check_abort
guest_check_run:
    PUSH_CALLEE_SAVED
    mov [rel recover_rsp], rsp
    sub rsp, 8
    call rdi
    add rsp, 8
    xor eax, eax
    jmp check_done
guest_check_abort:
    mov rsp, [rel recover_rsp]
    mov eax, 1
check_done:
    POP_CALLEE_SAVED
    ret

; Probes with a fixed length, so an expected trap can resume after them.
global guest_ud2, guest_int3, guest_read64, guest_write64, guest_xen_cpuid, guest_rdmsr, guest_wrmsr
guest_ud2:                                 ; #UD at guest_ud2; resume at +2
    ud2
    ret
guest_int3:                                ; #BP reported with rip after the int3
    int3
    ret
global guest_int82_hypercall
guest_int82_hypercall:                     ; long guest_int82_hypercall(ulong nr, ulong a1): the trap-based entry
    mov rax, rdi
    mov rdi, rsi
    int 0x82
    ret
guest_read64:                              ; ulong guest_read64(ulong va): 3-byte load at guest_read64
    mov rax, [rdi]
    ret
guest_write64:                             ; void guest_write64(ulong va, ulong value): 3-byte store
    mov [rdi], rsi
    ret
; void guest_xen_cpuid(uint leaf, uint subleaf, uint* out4): Xen's forced-emulation prefix.
guest_xen_cpuid:
    push rbx
    mov r9, rdx
    mov eax, edi
    mov ecx, esi
    db 0x0f, 0x0b, 'x', 'e', 'n'
    cpuid
    mov [r9], eax
    mov [r9 + 4], ebx
    mov [r9 + 8], ecx
    mov [r9 + 12], edx
    pop rbx
    ret
guest_rdmsr:                               ; ulong guest_rdmsr(uint msr)
    mov ecx, edi
    rdmsr
    shl rdx, 32
    mov eax, eax
    or rax, rdx
    ret
guest_wrmsr:                               ; void guest_wrmsr(uint msr, ulong value)
    mov ecx, edi
    mov eax, esi
    mov rdx, rsi
    shr rdx, 32
    wrmsr
    ret

; long guest_multicall_iret(ulong list, ulong nr, ulong ifFlag, ulong* out2): multicall(list, nr) made
; with an iret context {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} at RSP that resumes after the
; syscall with rax 0x1be7, r11 0x11e7, rcx 0xc5e7 and rflags.IF = ifFlag: what a multicall whose entry
; is iret returns through. out2 receives the rcx and r11 seen after the call.
global guest_multicall_iret
guest_multicall_iret:
    push rbx
    mov rbx, rsp
    mov r9, rcx
    xor eax, eax
    mov ax, ss
    push rax                               ; ss
    push rbx                               ; rsp
    pushfq
    and qword [rsp], ~0x200
    or [rsp], rdx                          ; rflags
    mov ax, cs
    and eax, ~3                            ; a kernel frame: RPL 0
    push rax                               ; cs
    lea rax, [rel .back]
    push rax                               ; rip
    push 0                                 ; flags
    push 0xc5e7                            ; rcx
    push 0x11e7                            ; r11
    push 0x1be7                            ; rax
    mov eax, 13                            ; __HYPERVISOR_multicall
    syscall
.back:
    mov rsp, rbx
    mov [r9], rcx
    mov [r9 + 8], r11
    pop rbx
    ret

; long guest_iret_to(ulong cs, ulong ss, ulong rip, ulong ifFlag, ulong flags): HYPERVISOR_iret through the context
; {rax 0, r11 0, rcx 0, flags, rip, cs, rflags, rsp, ss} with our own RSP and RFLAGS (IF = ifFlag) and
; the given selectors and RIP (0: guest_iret_landing, just below). An iret the CPU refuses reaches our trap
; handler, which resumes at guest_iret_landing with the kernel's selectors (Traps.ExpectAt). Returns 0.
global guest_iret_to, guest_iret_landing
guest_iret_to:
    push rbx
    mov rbx, rsp
    lea rax, [rel guest_iret_landing]
    test rdx, rdx
    cmovz rdx, rax
    push rsi                               ; ss
    push rbx                               ; rsp
    pushfq
    and qword [rsp], ~0x200
    or [rsp], rcx                          ; rflags
    push rdi                               ; cs
    push rdx                               ; rip
    push r8                                ; flags
    push 0                                 ; rcx
    push 0                                 ; r11
    push 0                                 ; rax
    mov eax, 23                            ; __HYPERVISOR_iret
    syscall
guest_iret_landing:
    mov rsp, rbx
    xor eax, eax
    pop rbx
    ret

global guest_far_call_ldt
guest_far_call_ldt:                        ; void guest_far_call_ldt(void): a far call through LDT selector 0x0007
    call far dword [rel .target]           ; (6 bytes: FF 1D rel32, m16:32); resume after it
    ret
.target:
    dd 0
    dw 0x0007

; Segment selectors (PvTest/LdtChecks.cs). A faulting load is 2 bytes (8E /r), resumed after: the ret.
global guest_load_fs
guest_load_fs:                             ; void guest_load_fs(ushort selector)
    mov fs, edi
    ret
global guest_load_ds
guest_load_ds:                             ; void guest_load_ds(ushort selector)
    mov ds, edi
    ret
global guest_fs_read64
guest_fs_read64:                           ; ulong guest_fs_read64(ulong offset): the qword at fs:[offset]
    mov rax, [fs:rdi]
    ret
global guest_load_selectors
guest_load_selectors:                      ; void guest_load_selectors(ushort* four): DS, ES, FS, GS
    movzx eax, word [rdi]
    mov ds, eax
    movzx eax, word [rdi + 2]
    mov es, eax
    movzx eax, word [rdi + 4]
    mov fs, eax
    movzx eax, word [rdi + 6]
    mov gs, eax
    ret
global guest_read_selectors
guest_read_selectors:                      ; void guest_read_selectors(ushort* four): DS, ES, FS, GS
    mov eax, ds
    mov [rdi], ax
    mov eax, es
    mov [rdi + 2], ax
    mov eax, fs
    mov [rdi + 4], ax
    mov eax, gs
    mov [rdi + 6], ax
    ret

; CR4 and the FS base instructions (CR4.FSGSBASE): rdfsbase/wrfsbase are 5 bytes, so a #UD resumes after them.
global guest_single_step
guest_single_step:                         ; ulong guest_single_step(void): sets TF for one instruction; returns
    lea rax, [rel .after]                  ; where its #DB should be reported (the trap follows that instruction)
    pushfq
    or qword [rsp], 0x100
    popfq
    nop
.after:
    ret

global guest_movss_hypercall
guest_movss_hypercall:                     ; long guest_movss_hypercall(ushort* ss, ulong nr, ulong a1, ulong a2):
    mov rax, rsi                           ; MOV SS from *ss, then the hypercall's SYSCALL in its shadow, so a data
    mov r11, rdi                           ; breakpoint on *ss raises its #DB after the SYSCALL, at CPL 0 (XSA-260)
    mov rdi, rdx
    mov rsi, rcx
    mov ss, [r11]
    syscall
    ret

global guest_read_cr4, guest_write_cr4, guest_rdfsbase, guest_wrfsbase
guest_read_cr4:                            ; ulong guest_read_cr4(void): #GP, emulated
    mov rax, cr4
    ret
guest_write_cr4:                           ; void guest_write_cr4(ulong value): #GP, emulated
    mov cr4, rdi
    ret
guest_rdfsbase:                            ; ulong guest_rdfsbase(void)
    xor eax, eax
    rdfsbase rax
    ret
guest_wrfsbase:                            ; void guest_wrfsbase(ulong value)
    wrfsbase rdi
    ret
global guest_rdgsbase, guest_wrgsbase
guest_rdgsbase:                            ; ulong guest_rdgsbase(void)
    xor eax, eax
    rdgsbase rax
    ret
guest_wrgsbase:                            ; void guest_wrgsbase(ulong value)
    wrgsbase rdi
    ret

; Guest user mode (PvTest/GuestModeChecks.cs). long guest_user_call(ushort fs, ushort gs, ulong gsBase, ulong what,
; ulong userStack): HYPERVISOR_iret to guest user mode (CS with RPL 3, RFLAGS.IF clear: events masked there) on
; userStack, where it loads FS and GS with the two selectors (what bit 0), writes gsBase with WRGSBASE (bit 1) and
; reads the GS base with RDGSBASE into RAX (bit 2; else RAX = 0), then makes a SYSCALL: the kernel's syscall
; callback, guest_user_syscall_entry, takes our kernel stack back and returns that RAX.
global guest_user_call, guest_user_syscall_entry
guest_user_call:
    PUSH_CALLEE_SAVED
    mov [rel user_call_rsp], rsp
    mov r9, rcx                            ; (the iret context sets RCX and R11)
    push 0xE02B                            ; ss: FLAT_RING3_SS64
    push r8                                ; rsp
    push 0x002                             ; rflags
    push 0xE033                            ; cs: FLAT_RING3_CS64, RPL 3 = to user mode
    lea rax, [rel .user]
    push rax                               ; rip
    push 0                                 ; flags
    push 0                                 ; rcx
    push 0                                 ; r11
    push 0                                 ; rax
    mov eax, 23                            ; __HYPERVISOR_iret
    syscall
.user:
    test r9, 1
    jz .no_selectors
    mov fs, edi
    mov gs, esi
.no_selectors:
    test r9, 2
    jz .no_write
    wrgsbase rdx
.no_write:
    xor eax, eax
    test r9, 4
    jz .no_read
    rdgsbase rax
.no_read:
    syscall
guest_user_syscall_entry:
    mov rsp, [rel user_call_rsp]
    POP_CALLEE_SAVED
    ret

global guest_inb
guest_inb:                                 ; byte guest_inb(uint port): traps (#GP) and is emulated
    mov edx, edi
    xor eax, eax
    in al, dx
    ret

; Atomics for words the hypervisor writes concurrently (pending bits, selector).
global guest_xchg64, guest_test_and_clear_bit, guest_pause, guest_xchg32, guest_cmpxchg32
guest_xchg32:                              ; uint guest_xchg32(uint* p, uint v)
    mov eax, esi
    xchg [rdi], eax
    ret
guest_cmpxchg32:                           ; uint guest_cmpxchg32(uint* p, uint value, uint comparand): the value found
    mov eax, edx
    lock cmpxchg [rdi], esi
    ret
guest_xchg64:                              ; ulong guest_xchg64(ulong* p, ulong v)
    mov rax, rsi
    xchg [rdi], rax
    ret
guest_test_and_clear_bit:                  ; int guest_test_and_clear_bit(ulong* p, int bit)
    xor eax, eax
    lock btr [rdi], rsi
    setc al
    ret
guest_pause:
    pause
    ret
global guest_atomic_add64
guest_atomic_add64:                        ; ulong guest_atomic_add64(ulong* p, ulong v): the old value
    mov rax, rsi
    lock xadd [rdi], rax
    ret

section .bss
align 8
recover_rsp: resq 1
user_call_rsp: resq 1

section .text
global guest_rdtsc
guest_rdtsc:
    rdtsc
    shl rdx, 32
    or rax, rdx
    ret

; ulong guest_symbol(int which): addresses the C# side needs (see Common/Cpu.cs), or the trap
; entry for vector which-7.
global guest_symbol
guest_symbol:
    lea rax, [rel symbols]
    mov rax, [rax + rdi * 8]
    ret

section .rodata
align 8
symbols:
    dq guest_check_abort, guest_ud2, guest_int3, guest_read64, guest_write64
    dq guest_event_callback, guest_failsafe_callback
    dq guest_trap_0, guest_trap_1, 0, guest_trap_3, guest_trap_4, guest_trap_5, guest_trap_6, guest_trap_7
    dq 0, 0, guest_trap_10, guest_trap_11, guest_trap_12, guest_trap_13, guest_trap_14, 0
    dq guest_trap_16, guest_trap_17, 0, guest_trap_19
    dq guest_iret_landing
    dq guest_vcpu1_loop
    dq guest_user_syscall_entry

section .text
; A secondary vCPU's whole program (VCPUOP_initialise starts it here with rdi = a block the first vCPU
; shares with it): forever, poll the port at [block+8] (events stay masked: no upcall, no trap table),
; take its pending bit, count the wake-up at [block] and notify the port at [block+12]. The poll
; argument lives in the block at +24 (ports, nr_ports, timeout); [block+48] = shared_info's
; evtchn_pending array.
global guest_vcpu1_loop
guest_vcpu1_loop:
    mov rbx, rdi
.poll:
    lea rax, [rbx + 8]
    mov [rbx + 24], rax
    mov dword [rbx + 32], 1
    mov qword [rbx + 40], 0
    mov edi, 3                            ; SCHEDOP_poll
    lea rsi, [rbx + 24]
    call hypercall_page + 29 * 32         ; sched_op
    mov ecx, [rbx + 8]
    mov rdx, [rbx + 48]
    lock btr [rdx], rcx                   ; the port's pending bit (bit-string addressing)
    jnc .poll                             ; woken for something else: poll again
    lock inc qword [rbx]
    mov edi, 4                            ; EVTCHNOP_send
    lea rsi, [rbx + 12]
    call hypercall_page + 32 * 32         ; event_channel_op
    jmp .poll

; Loads and stores the compiler cannot merge or move: for words the hypervisor changes under us.
global guest_load8, guest_load32, guest_store8, guest_store32
guest_load8:
    movzx eax, byte [rdi]
    ret
guest_load32:
    mov eax, [rdi]
    ret
guest_store8:
    mov [rdi], sil
    ret
guest_store32:
    mov [rdi], esi
    ret
