; Hypercalls for a 64-bit Xen PV guest kernel, as SysV-callable functions (Common/Hypercall.cs
; binds them). The guest image provides `hypercall_page`, the page the hypervisor fills with one
; 32-byte stub per hypercall number (ELF note XEN_ELFNOTE_HYPERCALL_PAGE).
bits 64
section .text

extern hypercall_page

; long xen_hypercall(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
; Xen wants the arguments in rdi, rsi, rdx, r10, r8: shift SysV's registers by one.
global xen_hypercall
xen_hypercall:
    mov rax, rdi
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    mov r10, r8
    mov r8, r9
    cmp rax, 127                          ; the page has 128 slots; larger numbers use a raw syscall
    ja .raw
    shl rax, 5
    lea r11, [rel hypercall_page]
    add rax, r11
    call rax
    ret
.raw:
    syscall
    ret

; long xen_raw_hypercall(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
; The same, without the page: what a guest that ignores the page (Debian's Linux) does.
global xen_raw_hypercall
xen_raw_hypercall:
    mov rax, rdi
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    mov r10, r8
    mov r8, r9
    syscall
    ret
