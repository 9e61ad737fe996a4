; pvops on bare metal (ring 0): the instructions behind the native backend (Native*.cs), the IDT
; and its entry stubs, and the native shim's entry points (Shim.cs): the hypercall page it fills,
; its iret, and event/trap delivery in Xen's bounce-frame format.
bits 64
section .text

extern pvops_native_trap                   ; C#: void pvops_native_trap(NativeFrame*)
extern pvops_shim_dispatch                 ; C#: long pvops_shim_dispatch(ulong nr, a1..a5)
extern hypercall_page

%macro VEC_NOERR 1
vec_%1:
    push 0
    push %1
    jmp native_common
%endmacro
%macro VEC_ERR 1
vec_%1:
    push %1
    jmp native_common
%endmacro

VEC_NOERR 0
VEC_NOERR 1
VEC_NOERR 2
VEC_NOERR 3
VEC_NOERR 4
VEC_NOERR 5
VEC_NOERR 6
VEC_NOERR 7
VEC_ERR 8
VEC_NOERR 9
VEC_ERR 10
VEC_ERR 11
VEC_ERR 12
VEC_ERR 13
VEC_ERR 14
VEC_NOERR 15
VEC_NOERR 16
VEC_ERR 17
VEC_NOERR 18
VEC_NOERR 19
VEC_NOERR 32
VEC_NOERR 39
VEC_NOERR 0x81

; Frame: r15..rax, vector, error, rip, cs, rflags, rsp, ss (Common/Traps.cs TrapFrame order).
; C# may set bounce_target: then the exception is delivered to that guest handler in Xen's
; format ({rcx, r11, [error], rip, cs, rflags, rsp, ss}) instead of returning.
native_common:
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
    call pvops_native_trap
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
    cmp qword [rel bounce_target], 0
    jne .bounce
    add rsp, 16
    iretq
.bounce:
    cmp byte [rel bounce_has_error], 0
    je .no_error
    add rsp, 8                             ; keep the error code
    jmp .frame
.no_error:
    add rsp, 16
.frame:
    push r11
    push rcx
    push rax
    mov rax, [rel bounce_target]
    mov qword [rel bounce_target], 0
    xchg rax, [rsp]
    ret

global native_idt_load
native_idt_load:                           ; void native_idt_load(void): gates for every stub
    lea rsi, [rel vectors]
    lea rdi, [rel native_idt]
.next:
    movzx ecx, word [rsi]                  ; vector
    cmp ecx, 0xFFFF
    je .done
    mov rax, [rsi + 8]                     ; handler
    mov rdx, rcx
    shl rdx, 4
    add rdx, rdi
    mov [rdx], ax                          ; offset 15:0
    mov word [rdx + 2], 0x08
    mov word [rdx + 4], 0x8E00             ; present, DPL0, 64-bit interrupt gate
    cmp ecx, 3
    jne .gate
    mov word [rdx + 4], 0xEE00             ; int3 from any ring
.gate:
    shr rax, 16
    mov [rdx + 6], ax
    shr rax, 16
    mov [rdx + 8], eax
    mov dword [rdx + 12], 0
    add rsi, 16
    jmp .next
.done:
    lea rax, [rel native_idtr]
    mov word [rax], 4095
    mov [rax + 2], rdi
    lidt [rax]
    ret

; Small instructions the native backend binds.
global native_cli, native_sti, native_save_fl, native_safe_halt, native_hlt, native_read_cr3, native_write_cr3
global native_invlpg, native_outb, native_inb, native_int3, native_int_event
native_cli:       cli
                  ret
native_sti:       sti
                  ret
native_save_fl:   pushfq
                  pop rax
                  ret
native_safe_halt: sti                      ; the interrupt shadow makes sti;hlt atomic
                  hlt
                  ret
native_hlt:       hlt
                  ret
native_read_cr3:  mov rax, cr3
                  ret
native_write_cr3: mov cr3, rdi
                  ret
native_invlpg:    invlpg [rdi]
                  ret
native_outb:      mov edx, edi
                  mov eax, esi
                  out dx, al
                  ret
native_inb:       mov edx, edi
                  xor eax, eax
                  in al, dx
                  ret
native_int3:      int3
                  ret
native_int_event: int 0x81
                  ret

; ulong native_bare_irq_pair(void): Bench.IrqPair with cli and sti written inline, instruction for
; instruction as the compiler lays IrqPair out (the bench's irq_cli_sti_bare row: what patched sites
; should cost natively).
extern guest_rdtsc
global native_bare_irq_pair
native_bare_irq_pair:
    push rbp
    push rbx
    push rax
    lea rbp, [rsp + 0x10]
    call guest_rdtsc
    mov rbx, rax
    cli
    sti
    call guest_rdtsc
    sub rax, rbx
    add rsp, 8
    pop rbx
    pop rbp
    ret

; The native shim: hypercall page slots call shim_entry with the number in eax and Xen's
; argument registers (rdi, rsi, rdx, r10, r8); slot 23 (iret) is entered by jmp, as from Xen's page.
global shim_fill_hypercall_page
shim_fill_hypercall_page:
    lea rdi, [rel hypercall_page]
    lea r8, [rel shim_entry]
    lea r9, [rel shim_iret]
    xor ecx, ecx
.slot:
    mov rdx, rcx
    shl rdx, 5
    add rdx, rdi
    cmp ecx, 23
    je .iret
    mov byte [rdx], 0xB8                   ; mov eax, imm32
    mov [rdx + 1], ecx
    mov word [rdx + 5], 0xBB49             ; mov r11, imm64
    mov [rdx + 7], r8
    mov byte [rdx + 15], 0x41              ; jmp r11
    mov word [rdx + 16], 0xE3FF
    jmp .next
.iret:
    mov byte [rdx], 0x51                   ; push rcx
    mov word [rdx + 1], 0x5341             ; push r11
    mov byte [rdx + 3], 0x50               ; push rax
    mov word [rdx + 4], 0xBB49             ; mov r11, imm64
    mov [rdx + 6], r9
    mov byte [rdx + 14], 0x41              ; jmp r11
    mov word [rdx + 15], 0xE3FF
.next:
    inc ecx
    cmp ecx, 128
    jb .slot
    ret

shim_entry:
    cli
    push rbp
    mov rbp, rsp
    and rsp, -16
    mov r9, r8
    mov r8, r10
    mov rcx, rdx
    mov rdx, rsi
    mov rsi, rdi
    mov edi, eax
    call pvops_shim_dispatch
    mov rsp, rbp
    pop rbp
    ; As Xen does on the way back from any hypercall: deliver a pending, unmasked event.
    mov rcx, [rel shim_vcpu_info]
    test rcx, rcx
    jz .done
    cmp byte [rcx + 1], 0
    jne .done
    cmp byte [rcx], 0
    je .done
    int 0x81
.done:
    sti
    ret

; Stack: rax, r11, rcx, flags, rip, cs, rflags, rsp, ss (Xen's iret_context). The event mask
; follows the saved rflags.IF, as Xen's iret hypercall does.
shim_iret:
    pop rax
    pop r11
    pop rcx
    add rsp, 8
    push rax
    mov rax, [rel shim_vcpu_info]
    test rax, rax
    jz .out
    test byte [rsp + 8 + 17], 2            ; rflags bit 9
    setz byte [rax + 1]
.out:
    pop rax
    iretq

; long rom_call(ulong entry, ulong a1, ulong a2, ulong a3): the ABI ROM's convention (args in
; rdi, rsi, rdx; rax, rcx, r11 clobbered) is a subset of SysV's, so the thunk only shifts arguments.
global rom_call
rom_call:
    mov rax, rdi
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    jmp rax

section .rodata
align 8
vectors:
%assign v 0
%rep 20
    dq v, vec_ %+ v
%assign v v + 1
%endrep
    dq 32, vec_32
    dq 39, vec_39
    dq 0x81, vec_0x81
    dq 0xFFFF, 0

section .data
align 8
global bounce_target, bounce_has_error, shim_vcpu_info
bounce_target:    dq 0
bounce_has_error: dq 0
shim_vcpu_info:   dq 0

section .bss
align 4096
native_idt:  resb 4096
native_idtr: resb 16

section .note.GNU-stack noalloc noexec nowrite progbits

section .text
global native_boot_m2p, shim_set_vcpu_info, native_set_bounce
native_boot_m2p:                           ; ulong: physical address of the boot identity M2P
    extern boot_m2p
    mov eax, boot_m2p
    ret
shim_set_vcpu_info:
    mov [rel shim_vcpu_info], rdi
    ret
native_set_bounce:                         ; void native_set_bounce(ulong target, ulong hasError)
    mov [rel bounce_has_error], rsi
    mov [rel bounce_target], rdi
    ret
