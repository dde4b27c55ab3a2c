/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Start-up code of the test payload: the Multiboot v1 header, the 32-bit entry that
 * builds identity page tables and enters long mode, the real-mode trampoline that
 * brings application processors to long mode, and the exception stubs. */

#define MB_HEADER_MAGIC   0x1BADB002
#define MB_HEADER_FLAGS   0x00000003   /* bit 0: page-align modules, bit 1: memory info */

#define CR0_PE            0x00000001
#define CR0_PG            0x80000000
#define CR4_PAE           0x00000020
#define MSR_EFER          0xC0000080
#define EFER_LME          0x00000100

#define SEL_CODE64        0x08
#define SEL_DATA          0x10

/* 16 GiB in 2 MiB pages: 8192 PD entries in 16 PD pages (PAYLOAD_MAPPED_BYTES). */
#define PD_PAGES          16
#define PD_ENTRIES        (PD_PAGES * 512)
#define PTE_P_RW          0x003
#define PTE_PS            0x080
#define PTE_PWT_PCD       0x018
/* 2 MiB pages from 0xFE000000 to 4 GiB (I/O APIC, local APIC, BIOS) are uncached. */
#define PD_UNCACHED_FIRST 0x7F0
#define PD_UNCACHED_END   0x800

#define STACK_SIZE        16384
#define TRAMPOLINE_GPA    0x8000

    .section .multiboot, "a"
    .balign 4
    .long MB_HEADER_MAGIC
    .long MB_HEADER_FLAGS
    .long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

/* ------------------------------------------------------------------------------ */
    .section .text.entry, "ax"
    .code32
    .globl payload_entry32
payload_entry32:
    cli
    cld
    /* The loader's EAX/EBX live in .data: .bss is about to be cleared. */
    movl %eax, payload_mb_magic
    movl %ebx, payload_mb_info

    movl $payload_bss_start, %edi
    movl $payload_bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    movl $payload_bsp_stack + STACK_SIZE, %esp

    /* PD entries: identity, 2 MiB pages. The high dword is (i << 21) >> 32. */
    movl $payload_pd, %edi
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $(PTE_P_RW | PTE_PS), %eax
    movl %ecx, %edx
    shrl $11, %edx
    movl %eax, (%edi,%ecx,8)
    movl %edx, 4(%edi,%ecx,8)
    incl %ecx
    cmpl $PD_ENTRIES, %ecx
    jb 1b

    movl $PD_UNCACHED_FIRST, %ecx
2:  orl $PTE_PWT_PCD, (%edi,%ecx,8)
    incl %ecx
    cmpl $PD_UNCACHED_END, %ecx
    jb 2b

    /* PDPT entries 0..15 point at the PD pages. */
    movl $payload_pdpt, %edi
    movl $payload_pd + PTE_P_RW, %eax
    xorl %ecx, %ecx
3:  movl %eax, (%edi,%ecx,8)
    addl $4096, %eax
    incl %ecx
    cmpl $PD_PAGES, %ecx
    jb 3b

    movl $payload_pdpt + PTE_P_RW, %eax
    movl %eax, payload_pml4

    movl $payload_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    lgdt payload_gdtr
    movl %cr0, %eax
    orl $(CR0_PG | CR0_PE), %eax
    movl %eax, %cr0
    ljmp $SEL_CODE64, $bsp_long_entry

    .code64
bsp_long_entry:
    movw $SEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $payload_bsp_stack + STACK_SIZE, %rsp
    movl payload_mb_magic(%rip), %edi
    movl payload_mb_info(%rip), %esi
    call payload_main
    jmp payload_halt_forever

    .globl payload_halt_forever
payload_halt_forever:
    cli
    hlt
    jmp payload_halt_forever

/* An application processor arrives here from the trampoline, in 64-bit mode on the
 * BSP's page tables. The BSP starts APs one at a time and publishes the stack. */
    .globl payload_ap_long_entry
payload_ap_long_entry:
    movw $SEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq payload_ap_stack_top(%rip), %rsp
    call payload_ap_main
    jmp payload_halt_forever

/* ------------------------------------------------------------------------------ */
/* Exception stubs: push a zero where the CPU pushes no error code, then the vector. */
    .macro ISR_NOERR vec
isr\vec:
    pushq $0
    pushq $\vec
    jmp isr_common
    .endm
    .macro ISR_ERR vec
isr\vec:
    pushq $\vec
    jmp isr_common
    .endm

    ISR_NOERR 0
    ISR_NOERR 1
    ISR_NOERR 2
    ISR_NOERR 3
    ISR_NOERR 4
    ISR_NOERR 5
    ISR_NOERR 6
    ISR_NOERR 7
    ISR_ERR   8
    ISR_NOERR 9
    ISR_ERR   10
    ISR_ERR   11
    ISR_ERR   12
    ISR_ERR   13
    ISR_ERR   14
    ISR_NOERR 15
    ISR_NOERR 16
    ISR_ERR   17
    ISR_NOERR 18
    ISR_NOERR 19
    ISR_NOERR 20
    ISR_ERR   21
    ISR_NOERR 22
    ISR_NOERR 23
    ISR_NOERR 24
    ISR_NOERR 25
    ISR_NOERR 26
    ISR_NOERR 27
    ISR_NOERR 28
    ISR_ERR   29
    ISR_ERR   30
    ISR_NOERR 31

isr_common:
    /* Frame: vector, error code, RIP, CS, RFLAGS, RSP, SS. */
    movq %rsp, %rdi
    andq $-16, %rsp
    call payload_fault
    jmp payload_halt_forever

    .section .rodata
    .balign 8
    .globl payload_isr_table
payload_isr_table:
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr\vec
    .endr

/* ------------------------------------------------------------------------------ */
    .data
    .balign 8
    .globl payload_mb_magic, payload_mb_info, payload_ap_stack_top
payload_mb_magic:
    .long 0
payload_mb_info:
    .long 0
payload_ap_stack_top:
    .quad 0

    .balign 16
payload_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF    /* 0x10: data, 4 GiB flat */
payload_gdt_end:
    .balign 4
    .word 0
payload_gdtr:
    .word payload_gdt_end - payload_gdt - 1
    .long payload_gdt

/* Real-mode start-up code for APs, copied to TRAMPOLINE_GPA; the SIPI vector is
 * TRAMPOLINE_GPA >> 12. Goes straight from real mode to long mode: with EFER.LME
 * set, turning on PE and PG together enters compatibility mode, and the far jump
 * loads the 64-bit code segment. Addresses are relative to the copy (CS = 0x800). */
    .section .trampoline, "aw"
    .code16
    .globl payload_trampoline_cr3
tramp_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl tramp_gdtr - tramp_start
    movl tramp_cr3 - tramp_start, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $(CR0_PG | CR0_PE), %eax
    movl %eax, %cr0
    ljmpl $SEL_CODE64, $payload_ap_long_entry
    .balign 4
    .word 0
tramp_gdtr:
    .word payload_gdt_end - payload_gdt - 1
    .long payload_gdt
tramp_cr3:
payload_trampoline_cr3:
    .long payload_pml4

/* ------------------------------------------------------------------------------ */
    .bss
    .balign 4096
    .globl payload_pml4, payload_pdpt, payload_pd, payload_bsp_stack
payload_pml4:
    .skip 4096
payload_pdpt:
    .skip 4096
payload_pd:
    .skip 4096 * PD_PAGES
payload_bsp_stack:
    .skip STACK_SIZE
