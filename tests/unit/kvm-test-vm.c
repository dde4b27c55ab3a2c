/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The KVM unit tests' machine: guest code, port handlers, creating, booting and freeing a VM. */
#include "kvm-test-vm.h"

#include <sys/mman.h>

#include "accel/accel.h"
#include "accel/kvm.h"
#include "hw/ioport.h"
#include "hw/pc.h"
#include "hw/serial.h"
#include "migration/vmstate.h"

/*
 * 32-bit protected-mode guest code, assembled by hand.
 * Entry 0: loop { ecx++; [COUNTER_GPA] = ecx; out PORT_COUNT, ecx;
 *                 in eax, PORT_MAGIC; [IN_RESULT_GPA] = eax }
 */
static const uint8_t guest_counter_loop[] = {
    0x31, 0xc9,                               /* xor ecx, ecx */
    0x41,                                     /* 1: inc ecx */
    0x89, 0x0d, 0x00, 0x00, 0x20, 0x00,       /* mov [0x200000], ecx */
    0x66, 0xba, 0x00, 0x05,                   /* mov dx, 0x500 */
    0x89, 0xc8,                               /* mov eax, ecx */
    0xef,                                     /* out dx, eax */
    0x66, 0xba, 0x01, 0x05,                   /* mov dx, 0x501 */
    0xed,                                     /* in eax, dx */
    0xa3, 0x00, 0x10, 0x20, 0x00,             /* mov [0x201000], eax */
    0xeb, 0xe6,                               /* jmp 1b */
};

/* Entry 0x100: out PORT_SPIN, al forever. */
static const uint8_t guest_spin_loop[] = {
    0x66, 0xba, 0x02, 0x05,                   /* mov dx, 0x502 */
    0xee,                                     /* 1: out dx, al */
    0xeb, 0xfd,                               /* jmp 1b */
};

/*
 * Entry 0x200: enable the xAPIC, send INIT then SIPI (vector 0x08, so the AP
 * starts in real mode at 0x8000) to APIC ID 1, then halt.
 */
static const uint8_t guest_bsp_sipi[] = {
    0xc7, 0x05, 0xf0, 0x00, 0xe0, 0xfe, 0xff, 0x01, 0x00, 0x00, /* SVR = 0x1ff */
    0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x01, /* ICR hi = ID 1 */
    0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x45, 0x00, 0x00, /* ICR lo = INIT */
    0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x08, 0x46, 0x00, 0x00, /* ICR lo = SIPI 8 */
    0xf4,                                     /* 1: hlt */
    0xeb, 0xfd,                               /* jmp 1b */
};

/* Entry 0x300: increment [COUNTER_GPA] forever, never leaving guest mode by itself. */
static const uint8_t guest_memory_loop[] = {
    0xff, 0x05, 0x00, 0x00, 0x20, 0x00,       /* 1: inc dword [0x200000] */
    0xeb, 0xf8,                               /* jmp 1b */
};

/*
 * Entry 0x400: set a stack, load the GDT and IDT the test put at 0x6000/0x7000,
 * switch to long mode (PAE, the page tables at 0x5000, EFER.LME, paging) and
 * jump to 0x480. kvm_pvm runs long-mode guests: IRET in 32-bit protected
 * mode fails there with an emulation error, so the interrupt test runs in
 * 64-bit mode like the real payload.
 */
static const uint8_t guest_long_mode_switch[] = {
    0xbc, 0x00, 0x00, 0x09, 0x00,             /* mov esp, 0x90000 */
    0x0f, 0x01, 0x15, 0x00, 0x61, 0x00, 0x00, /* lgdt [0x6100] */
    0x0f, 0x01, 0x1d, 0x08, 0x61, 0x00, 0x00, /* lidt [0x6108] */
    0x0f, 0x20, 0xe0,                         /* mov eax, cr4 */
    0x83, 0xc8, 0x20,                         /* or eax, PAE */
    0x0f, 0x22, 0xe0,                         /* mov cr4, eax */
    0xb8, 0x00, 0x50, 0x00, 0x00,             /* mov eax, 0x5000 */
    0x0f, 0x22, 0xd8,                         /* mov cr3, eax */
    0xb9, 0x80, 0x00, 0x00, 0xc0,             /* mov ecx, EFER */
    0x0f, 0x32,                               /* rdmsr */
    0x0d, 0x00, 0x01, 0x00, 0x00,             /* or eax, LME */
    0x0f, 0x30,                               /* wrmsr */
    0x0f, 0x20, 0xc0,                         /* mov eax, cr0 */
    0x0d, 0x00, 0x00, 0x00, 0x80,             /* or eax, PG */
    0x0f, 0x22, 0xc0,                         /* mov cr0, eax */
    0xea, 0x80, 0x04, 0x10, 0x00, 0x20, 0x00, /* ljmp 0x20:0x100480 */
};

/*
 * Entry 0x480 (64-bit): program the master PIC (vector base 0x20, only IRQ 4
 * unmasked), enable the UART's received-data and THR-empty interrupts, then
 * sti; hlt forever.
 */
static const uint8_t guest_serial_irq_main[] = {
    0xb0, 0x11, 0xe6, 0x20,                   /* ICW1: edge, cascade, ICW4 */
    0xb0, 0x20, 0xe6, 0x21,                   /* ICW2: vectors 0x20-0x27 */
    0xb0, 0x04, 0xe6, 0x21,                   /* ICW3: slave on IRQ 2 */
    0xb0, 0x01, 0xe6, 0x21,                   /* ICW4: 8086 mode */
    0xb0, 0xef, 0xe6, 0x21,                   /* mask all but IRQ 4 */
    0xb0, 0xff, 0xe6, 0xa1,                   /* mask the slave */
    0x66, 0xba, 0xf9, 0x03,                   /* mov dx, 0x3f9 (IER) */
    0xb0, 0x03, 0xee,                         /* IER = RDI | THRI */
    0xfb,                                     /* sti */
    0xf4,                                     /* 1: hlt */
    0xeb, 0xfd,                               /* jmp 1b */
};

/*
 * Entry 0x500, the IRQ 4 handler (vector 0x24, 64-bit): report IIR on
 * PORT_IIR; if a byte was received, read it and report it on PORT_BYTE; EOI.
 */
static const uint8_t guest_serial_irq_handler[] = {
    0x50, 0x52,                               /* push rax; push rdx */
    0x66, 0xba, 0xfa, 0x03, 0xec,             /* in al, 0x3fa (IIR) */
    0x66, 0xba, 0x04, 0x05, 0xee,             /* out 0x504, al */
    0x66, 0xba, 0xfd, 0x03, 0xec,             /* in al, 0x3fd (LSR) */
    0xa8, 0x01,                               /* test al, 1 (data ready) */
    0x74, 0x0a,                               /* jz 1f */
    0x66, 0xba, 0xf8, 0x03, 0xec,             /* in al, 0x3f8 (RBR) */
    0x66, 0xba, 0x05, 0x05, 0xee,             /* out 0x505, al */
    0xb0, 0x20, 0xe6, 0x20,                   /* 1: EOI to the master PIC */
    0x5a, 0x58,                               /* pop rdx; pop rax */
    0x48, 0xcf,                               /* iretq */
};

/* Entry 0x600: read PORT_IN_PAUSE, store the value at IN_RESULT_GPA, forever. */
static const uint8_t guest_in_loop[] = {
    0x66, 0xba, 0x06, 0x05,                   /* 1: mov dx, 0x506 */
    0xed,                                     /* in eax, dx */
    0xa3, 0x00, 0x10, 0x20, 0x00,             /* mov [0x201000], eax */
    0xeb, 0xf4,                               /* jmp 1b */
};

/* 16-bit real-mode AP code at 0x8000: out PORT_AP, 0xa5; then halt. */
static const uint8_t guest_ap_real_mode[] = {
    0xba, 0x03, 0x05,                         /* mov dx, 0x503 */
    0xb0, 0xa5,                               /* mov al, 0xa5 */
    0xee,                                     /* out dx, al */
    0xf4,                                     /* 1: hlt */
    0xeb, 0xfd,                               /* jmp 1b */
};

static void port_count_write(void *opaque, uint16_t port, unsigned size, uint32_t v)
{
    TestPorts *p = opaque;
    uint32_t zero = 0;

    __atomic_store_n(&p->count_last, v, __ATOMIC_RELAXED);
    __atomic_compare_exchange_n(&p->count_first_after_mark, &zero, v, false,
                                __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->count_writes, 1, __ATOMIC_RELAXED);
}

static uint32_t port_magic_read(void *opaque, uint16_t port, unsigned size)
{
    return MAGIC_VALUE;
}

static void port_spin_write(void *opaque, uint16_t port, unsigned size, uint32_t v)
{
    TestPorts *p = opaque;
    __atomic_add_fetch(&p->spin_writes, 1, __ATOMIC_RELAXED);
}

static void port_ap_write(void *opaque, uint16_t port, unsigned size, uint32_t v)
{
    TestPorts *p = opaque;
    __atomic_store_n(&p->ap_value, v, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->ap_writes, 1, __ATOMIC_RELAXED);
}

static void port_iir_write(void *opaque, uint16_t port, unsigned size, uint32_t v)
{
    TestPorts *p = opaque;
    __atomic_store_n(&p->iir_value, v, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->iir_writes, 1, __ATOMIC_RELAXED);
}

static void port_byte_write(void *opaque, uint16_t port, unsigned size, uint32_t v)
{
    TestPorts *p = opaque;
    __atomic_store_n(&p->byte_value, v, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->byte_writes, 1, __ATOMIC_RELAXED);
}

/* Pausing from inside the exit: the vCPU parks with this IN's value not yet in RAX. */
static uint32_t port_in_pause_read(void *opaque, uint16_t port, unsigned size)
{
    TestPorts *p = opaque;
    uint32_t v = __atomic_add_fetch(&p->in_last, 1, __ATOMIC_RELAXED);

    if (__atomic_exchange_n(&p->in_pause_armed, 0, __ATOMIC_ACQ_REL)) {
        p->m->accel->pause_vcpus(p->m);
    }
    return v;
}

uint64_t atomic_get(uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

bool skip_without_kvm(void)
{
    g_autoptr(GError) err = NULL;

    if (!kvm_available(&err)) {
        g_autofree char *why = g_strdup_printf("no usable KVM: %s", err->message);
        g_test_skip(why);
        return true;
    }
    return false;
}

TestVm *test_vm_new(uint64_t ram_size, unsigned smp)
{
    g_autoptr(GError) err = NULL;
    TestVm *vm = g_new0(TestVm, 1);
    Machine *m = g_new0(Machine, 1);

    vm->m = m;
    m->config = g_new0(MachineConfig, 1);
    m->config->ram_size = ram_size;
    m->config->smp = smp;
    m->main_context = g_main_context_new();
    m->ram_size = ram_size;
    m->smp = smp;
    vm->block.name = "pc.ram";
    vm->block.size = ram_size;
    vm->block.page_size = 4096;
    vm->block.host = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert_true(vm->block.host != MAP_FAILED);
    m->ram_blocks = g_ptr_array_new();
    g_ptr_array_add(m->ram_blocks, &vm->block);
    g_assert_true(pc_ram_layout_init(m, &vm->block, &err));

    ioport_register(m, PORT_COUNT, 1, NULL, port_count_write, &vm->ports);
    ioport_register(m, PORT_MAGIC, 1, port_magic_read, NULL, &vm->ports);
    ioport_register(m, PORT_SPIN, 1, NULL, port_spin_write, &vm->ports);
    ioport_register(m, PORT_AP, 1, NULL, port_ap_write, &vm->ports);
    ioport_register(m, PORT_IIR, 1, NULL, port_iir_write, &vm->ports);
    ioport_register(m, PORT_BYTE, 1, NULL, port_byte_write, &vm->ports);
    ioport_register(m, PORT_IN_PAUSE, 1, port_in_pause_read, NULL, &vm->ports);
    vm->ports.m = m;

    m->accel = &kvm_accel_ops;
    g_assert_true(m->accel->init(m, &err));
    g_assert_no_error(err);
    return vm;
}

void test_vm_free(TestVm *vm)
{
    Machine *m = vm->m;

    m->accel->destroy(m);
    /* Deliver any shutdown request so its callback frees itself. */
    while (g_main_context_iteration(m->main_context, FALSE)) {
    }
    serial_free(m->serial);
    ioport_table_free(m);
    if (m->vmstate_handlers) {
        g_array_unref(m->vmstate_handlers);
    }
    g_ptr_array_unref(m->ram_blocks);
    munmap(vm->block.host, vm->block.size);
    g_main_context_unref(m->main_context);
    g_free(m->shutdown_reason);
    g_free(m->config);
    g_free(m);
    g_free(vm);
}

void test_vm_load_code(TestVm *vm, uint64_t gpa, const uint8_t *code, size_t len)
{
    memcpy(vm->block.host + gpa, code, len);
}

/* Start the vCPUs at @entry (parked), then let them run. */
void test_vm_boot(TestVm *vm, uint32_t entry)
{
    g_autoptr(GError) err = NULL;
    Machine *m = vm->m;

    test_vm_load_code(vm, CODE_GPA, guest_counter_loop, sizeof(guest_counter_loop));
    test_vm_load_code(vm, CODE_GPA + 0x100, guest_spin_loop, sizeof(guest_spin_loop));
    test_vm_load_code(vm, CODE_GPA + 0x200, guest_bsp_sipi, sizeof(guest_bsp_sipi));
    test_vm_load_code(vm, CODE_GPA + 0x300, guest_memory_loop, sizeof(guest_memory_loop));
    test_vm_load_code(vm, CODE_GPA + 0x400, guest_long_mode_switch,
                      sizeof(guest_long_mode_switch));
    test_vm_load_code(vm, CODE_GPA + 0x480, guest_serial_irq_main,
                      sizeof(guest_serial_irq_main));
    test_vm_load_code(vm, CODE_GPA + 0x500, guest_serial_irq_handler,
                      sizeof(guest_serial_irq_handler));
    test_vm_load_code(vm, CODE_GPA + 0x600, guest_in_loop, sizeof(guest_in_loop));
    test_vm_load_code(vm, AP_TRAMPOLINE, guest_ap_real_mode, sizeof(guest_ap_real_mode));
    g_assert_true(m->accel->set_boot_entry(m, entry, 0, 0, &err));
    g_assert_no_error(err);
    g_assert_true(m->accel->start_vcpus(m, &err));
    g_assert_no_error(err);
    m->accel->resume_vcpus(m);
}

uint32_t guest_u32(TestVm *vm, uint64_t gpa)
{
    return __atomic_load_n((uint32_t *)(vm->block.host + gpa), __ATOMIC_RELAXED);
}

/* Wait up to @ms for *@counter to reach @want. */
bool wait_for(uint64_t *counter, uint64_t want, unsigned ms)
{
    gint64 deadline = g_get_monotonic_time() + ms * 1000;

    while (atomic_get(counter) < want) {
        if (g_get_monotonic_time() > deadline) {
            return false;
        }
        g_usleep(1000);
    }
    return true;
}

/* Wait up to @ms for the guest's counter at COUNTER_GPA to pass @want. */
bool wait_for_guest_counter(TestVm *vm, uint32_t want, unsigned ms)
{
    gint64 deadline = g_get_monotonic_time() + ms * 1000;

    while ((int32_t)(guest_u32(vm, COUNTER_GPA) - want) < 0) {
        if (g_get_monotonic_time() > deadline) {
            return false;
        }
        g_usleep(200);
    }
    return true;
}
