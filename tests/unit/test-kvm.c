/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for the KVM accelerator: port exits, pause, vCPU state, dirty log, real boots. */
#include "accel/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "accel/accel.h"
#include "hw/debug-exit.h"
#include "hw/ioport.h"
#include "hw/loader.h"
#include "hw/pc.h"
#include "hw/serial.h"
#include "migration/vmstate.h"
#include "system/machine.h"

#include "kvm-test-vm.h"

static void test_create(void)
{
    TestVm *vm;
    const char *want[] = { "cpu", "cpu", "pic", "pic", "ioapic", "pit", "kvmclock" };

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, 2);
    g_assert_cmpuint(vm->m->vmstate_handlers->len, ==, G_N_ELEMENTS(want));
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        VMStateHandler *h = &g_array_index(vm->m->vmstate_handlers, VMStateHandler, i);
        g_assert_cmpstr(h->name, ==, want[i]);
    }
    /* The serial's interrupt line reaches the in-kernel PIC and IOAPIC. */
    g_assert_true(kvm_set_irq(vm->m, SERIAL_COM1_IRQ, true));
    g_assert_true(kvm_set_irq(vm->m, SERIAL_COM1_IRQ, false));
    test_vm_free(vm);
}

static void test_port_io(void)
{
    TestVm *vm;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, 1);
    test_vm_boot(vm, CODE_GPA);
    g_assert_true(wait_for(&vm->ports.count_writes, 1000, 10000));
    vm->m->accel->pause_vcpus(vm->m);
    /* OUT carried the counter, IN brought the handler's value back. */
    g_assert_cmpuint(vm->ports.count_first_after_mark, ==, 1);
    g_assert_cmpuint(vm->ports.count_last, ==, vm->ports.count_writes);
    g_assert_cmphex(guest_u32(vm, IN_RESULT_GPA), ==, MAGIC_VALUE);
    g_assert_cmpuint(guest_u32(vm, COUNTER_GPA), >=, vm->ports.count_last);
    test_vm_free(vm);
}

static int cmp_int64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

/*
 * Pause and resume @rounds times while the guest runs the loop at @entry; the
 * guest's memory counter must stand still while paused and move after resume.
 */
static void pause_resume(unsigned smp, uint32_t entry, const char *what)
{
    const unsigned rounds = 200;
    g_autofree gint64 *lat = g_new(gint64, rounds);
    TestVm *vm;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, smp);
    test_vm_boot(vm, entry);
    g_assert_true(wait_for_guest_counter(vm, 100, 10000));

    for (unsigned i = 0; i < rounds; i++) {
        gint64 t0;

        g_assert_true(wait_for_guest_counter(vm, guest_u32(vm, COUNTER_GPA) + 5, 5000));
        t0 = g_get_monotonic_time();
        vm->m->accel->pause_vcpus(vm->m);
        lat[i] = g_get_monotonic_time() - t0;
        if (i % 50 == 0) {
            /* Paused means paused: no memory writes, no exits. */
            uint64_t writes = atomic_get(&vm->ports.count_writes);
            uint32_t counter = guest_u32(vm, COUNTER_GPA);
            g_usleep(20 * 1000);
            g_assert_cmpuint(atomic_get(&vm->ports.count_writes), ==, writes);
            g_assert_cmpuint(guest_u32(vm, COUNTER_GPA), ==, counter);
        }
        vm->m->accel->resume_vcpus(vm->m);
    }
    qsort(lat, rounds, sizeof(lat[0]), cmp_int64);
    g_test_message("pause latency, %u vCPUs, %s (%u rounds): p50 %" G_GINT64_FORMAT
                   " us, p99 %" G_GINT64_FORMAT " us, max %" G_GINT64_FORMAT " us",
                   smp, what, rounds, lat[rounds / 2], lat[rounds * 99 / 100],
                   lat[rounds - 1]);
    /* Bounded: a kick takes microseconds; a loaded 2-core host may add a slice. */
    g_assert_cmpint(lat[rounds / 2], <, 5000);
    g_assert_cmpint(lat[rounds - 1], <, 100000);
    vm->m->accel->pause_vcpus(vm->m);
    test_vm_free(vm);
}

static void test_pause_port_loop(void)
{
    pause_resume(1, CODE_GPA, "guest in a port I/O loop");
}

/* No exits of its own: only the kick takes the vCPU out of guest mode. */
static void test_pause_memory_loop(void)
{
    pause_resume(1, CODE_GPA + 0x300, "guest in a memory-only loop");
}

/* The AP sits in KVM_RUN waiting for SIPI: it must be kicked out too. */
static void test_pause_two(void)
{
    pause_resume(2, CODE_GPA + 0x300, "AP waiting for SIPI");
}

static void test_exit_round_trip(void)
{
    TestVm *vm;
    KvmStats stats;
    uint64_t n0, n1;
    gint64 t0, t1;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, 1);
    test_vm_boot(vm, CODE_GPA + 0x100);
    g_assert_true(wait_for(&vm->ports.spin_writes, 1000, 10000));
    n0 = atomic_get(&vm->ports.spin_writes);
    t0 = g_get_monotonic_time();
    g_usleep(500 * 1000);
    n1 = atomic_get(&vm->ports.spin_writes);
    t1 = g_get_monotonic_time();
    vm->m->accel->pause_vcpus(vm->m);
    kvm_get_stats(vm->m, &stats);
    g_test_message("KVM_RUN round trip for a port exit: %.2f us (%" G_GUINT64_FORMAT
                   " exits in %.0f ms)", (double)(t1 - t0) / (n1 - n0), n1 - n0,
                   (t1 - t0) / 1000.0);
    g_assert_cmpuint(stats.exits, >=, n1);
    test_vm_free(vm);
}

/* Save every record, run on, load them back: the guest resumes where it was saved. */
static void test_state_roundtrip(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func(
        (GDestroyNotify)g_byte_array_unref);
    TestVm *vm;
    GArray *handlers;
    uint32_t saved_last;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, 1);
    handlers = vm->m->vmstate_handlers;
    test_vm_boot(vm, CODE_GPA);
    g_assert_true(wait_for(&vm->ports.count_writes, 200, 10000));
    vm->m->accel->pause_vcpus(vm->m);
    saved_last = vm->ports.count_last;
    for (guint i = 0; i < handlers->len; i++) {
        VMStateHandler *h = &g_array_index(handlers, VMStateHandler, i);
        GByteArray *buf = g_byte_array_new();
        g_assert_true(h->save(h->opaque, buf, &err));
        g_assert_no_error(err);
        g_test_message("record %s.%u: %u bytes", h->name, h->instance, buf->len);
        g_ptr_array_add(records, buf);
    }

    /* Move on, far enough that a resumed guest would be noticed. */
    vm->m->accel->resume_vcpus(vm->m);
    g_assert_true(wait_for(&vm->ports.count_writes, saved_last + 500, 10000));
    vm->m->accel->pause_vcpus(vm->m);
    g_assert_cmpuint(vm->ports.count_last, >, saved_last + 400);

    for (guint i = 0; i < handlers->len; i++) {
        VMStateHandler *h = &g_array_index(handlers, VMStateHandler, i);
        GByteArray *buf = g_ptr_array_index(records, i);
        g_assert_true(h->load(h->opaque, buf->data, buf->len, h->version, &err));
        g_assert_no_error(err);
    }
    __atomic_store_n(&vm->ports.count_first_after_mark, 0, __ATOMIC_RELAXED);
    vm->m->accel->resume_vcpus(vm->m);
    g_assert_true(wait_for(&vm->ports.count_writes, atomic_get(&vm->ports.count_writes) + 10,
                           10000));
    vm->m->accel->pause_vcpus(vm->m);
    /* ECX and RIP came back from the record: the count restarts after it. */
    g_assert_cmpuint(vm->ports.count_first_after_mark, ==, saved_last + 1);

    /* A damaged record is refused with a reason. */
    {
        VMStateHandler *h = &g_array_index(handlers, VMStateHandler, 0);
        GByteArray *buf = g_ptr_array_index(records, 0);
        g_assert_cmpstr(h->name, ==, "cpu");
        g_assert_false(h->load(h->opaque, buf->data, buf->len - 3, h->version, &err));
        g_assert_nonnull(err);
        g_test_message("truncated cpu record: %s", err->message);
    }
    test_vm_free(vm);
}

/* Wait up to 10 s for the guest's reads of PORT_IN_PAUSE to reach @want. */
static void wait_for_in_reads(TestVm *vm, uint32_t want)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (__atomic_load_n(&vm->ports.in_last, __ATOMIC_RELAXED) < want) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(1000);
    }
}

/* Let the vCPUs run until the armed read has paused them (at most 10 s). */
static void run_until_in_pause(TestVm *vm)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    __atomic_store_n(&vm->ports.in_pause_armed, 1, __ATOMIC_RELEASE);
    vm->m->accel->resume_vcpus(vm->m);
    while (__atomic_load_n(&vm->ports.in_pause_armed, __ATOMIC_ACQUIRE)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_usleep(100);
    }
    vm->m->accel->pause_vcpus(vm->m);
}

/* Pause right after an IN exit: the armed read pauses from the vCPU thread. */
static uint32_t pause_after_in(TestVm *vm)
{
    run_until_in_pause(vm);
    return __atomic_load_n(&vm->ports.in_last, __ATOMIC_RELAXED);
}

/* RAX and RIP from a cpu record: chunks of (u32 tag, u32 length, bytes); regs is tag 1. */
static void record_regs(GByteArray *rec, uint64_t *rax, uint64_t *rip)
{
    VMStateReader r;

    vmstate_reader_init(&r, rec->data, rec->len);
    while (!r.overrun && r.pos < r.len) {
        uint32_t tag = vmstate_get_u32(&r);
        uint32_t len = vmstate_get_u32(&r);
        struct kvm_regs regs;

        if (tag != 1) {
            r.pos += len;
            continue;
        }
        g_assert_cmpuint(len, ==, sizeof(regs));
        g_assert_true(vmstate_get_bytes(&r, &regs, sizeof(regs)));
        *rax = regs.rax;
        *rip = regs.rip;
        return;
    }
    g_assert_not_reached();
}

/*
 * KVM puts an IN's value into RAX only on the next KVM_RUN. A vCPU paused
 * right after the exit must still be saved with the value in RAX, and a
 * state loaded over a paused vCPU must not be overwritten by that completion.
 */
static void test_state_after_in_exit(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) rec = g_byte_array_new();
    TestVm *vm;
    VMStateHandler *cpu;
    uint32_t value_saved, value_later;
    uint64_t rax = 0, rip = 0;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, 1);
    test_vm_boot(vm, CODE_GPA + 0x600);
    wait_for_in_reads(vm, 100);
    value_saved = pause_after_in(vm);
    cpu = &g_array_index(vm->m->vmstate_handlers, VMStateHandler, 0);
    g_assert_cmpstr(cpu->name, ==, "cpu");
    g_assert_true(cpu->save(cpu->opaque, rec, &err));
    g_assert_no_error(err);
    record_regs(rec, &rax, &rip);
    g_assert_cmphex(rip, ==, IN_LOOP_AFTER_IN);
    g_assert_cmphex((uint32_t)rax, ==, value_saved);

    /* Park after another IN, load the saved state: the guest stores the saved value. */
    vm->m->accel->resume_vcpus(vm->m);
    wait_for_in_reads(vm, value_saved + 100);
    value_later = pause_after_in(vm);
    g_assert_cmpuint(value_later, !=, value_saved);
    g_assert_true(cpu->load(cpu->opaque, rec->data, rec->len, cpu->version, &err));
    g_assert_no_error(err);
    run_until_in_pause(vm);
    g_assert_cmphex(guest_u32(vm, IN_RESULT_GPA), ==, value_saved);
    test_vm_free(vm);
}

static bool test_bit(const unsigned long *map, uint64_t bit)
{
    return map[bit / (8 * sizeof(long))] & (1UL << (bit % (8 * sizeof(long))));
}

static void test_dirty_log(void)
{
    g_autoptr(GError) err = NULL;
    const uint64_t ram = 16 << 20;
    g_autofree unsigned long *bitmap = g_new0(unsigned long, ram / 4096 / 64);
    TestVm *vm;
    Machine *m;
    unsigned dirty = 0;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(ram, 1);
    m = vm->m;
    test_vm_boot(vm, CODE_GPA);
    g_assert_true(wait_for(&vm->ports.count_writes, 10, 10000));
    g_assert_true(m->accel->dirty_log_start(m, &err));
    g_assert_no_error(err);
    g_assert_true(m->accel->dirty_log_sync(m, &vm->block, bitmap, &err));
    memset(bitmap, 0, ram / 4096 / 8);

    g_assert_true(wait_for(&vm->ports.count_writes, atomic_get(&vm->ports.count_writes) + 50,
                           10000));
    g_assert_true(m->accel->dirty_log_sync(m, &vm->block, bitmap, &err));
    g_assert_no_error(err);
    g_assert_true(test_bit(bitmap, COUNTER_GPA / 4096));
    g_assert_true(test_bit(bitmap, IN_RESULT_GPA / 4096));
    g_assert_false(test_bit(bitmap, FAR_GPA / 4096));
    for (uint64_t i = 0; i < ram / 4096; i++) {
        dirty += test_bit(bitmap, i);
    }
    g_test_message("%u dirty pages after a sync", dirty);

    /* Paused: nothing new is written, the next sync reports nothing. */
    m->accel->pause_vcpus(m);
    g_assert_true(m->accel->dirty_log_sync(m, &vm->block, bitmap, &err));
    memset(bitmap, 0, ram / 4096 / 8);
    g_assert_true(m->accel->dirty_log_sync(m, &vm->block, bitmap, &err));
    for (uint64_t i = 0; i < ram / 4096; i++) {
        g_assert_false(test_bit(bitmap, i));
    }
    m->accel->resume_vcpus(m);
    m->accel->dirty_log_stop(m);
    g_assert_false(m->accel->dirty_log_sync(m, &vm->block, bitmap, &err));
    g_assert_nonnull(err);
    test_vm_free(vm);
}

/* The BSP starts the AP with INIT and SIPI through the in-kernel LAPIC. */
static void test_init_sipi(void)
{
    TestVm *vm;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, 2);
    test_vm_boot(vm, CODE_GPA + 0x200);
    if (!wait_for(&vm->ports.ap_writes, 1, 5000)) {
        g_test_message("the AP did not start within 5 s of INIT/SIPI");
        g_test_fail();
    } else {
        g_assert_cmphex(vm->ports.ap_value, ==, 0xa5);
    }
    vm->m->accel->pause_vcpus(vm->m);
    test_vm_free(vm);
}

/*
 * GDT: flat 32-bit code 0x10, data 0x18, 64-bit code 0x20. IDT: one 64-bit
 * interrupt gate, vector 0x24. Page tables: the first 4 MiB identity-mapped
 * with 2 MiB pages.
 */
static void test_vm_write_tables(TestVm *vm)
{
    const uint64_t gdt[5] = { 0, 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull,
                              0x00af9a000000ffffull };
    const uint64_t handler = CODE_GPA + 0x500;
    const uint64_t gate[2] = {
        (handler & 0xffff) | (0x20ull << 16) | (0x8eull << 40) |
        ((handler >> 16 & 0xffff) << 48),
        handler >> 32,
    };
    const uint8_t gdtr[6] = { sizeof(gdt) - 1, 0, GUEST_GDT & 0xff, GUEST_GDT >> 8, 0, 0 };
    const uint8_t idtr[6] = { 0xff, 0x0f, GUEST_IDT & 0xff, GUEST_IDT >> 8, 0, 0 };
    const uint64_t pml4e = GUEST_PDPT | 3, pdpte = GUEST_PD | 3;
    const uint64_t pde[2] = { 0x000000 | 0x83, 0x200000 | 0x83 };

    memcpy(vm->block.host + GUEST_GDT, gdt, sizeof(gdt));
    memcpy(vm->block.host + GUEST_GDTR, gdtr, sizeof(gdtr));
    memcpy(vm->block.host + GUEST_IDTR, idtr, sizeof(idtr));
    memset(vm->block.host + GUEST_IDT, 0, 0x1000);
    memcpy(vm->block.host + GUEST_IDT + 0x24 * 16, gate, sizeof(gate));
    memcpy(vm->block.host + GUEST_PML4, &pml4e, sizeof(pml4e));
    memcpy(vm->block.host + GUEST_PDPT, &pdpte, sizeof(pdpte));
    memcpy(vm->block.host + GUEST_PD, pde, sizeof(pde));
}

/*
 * The UART's interrupt reaches a guest through KVM_IRQ_LINE and the in-kernel
 * PIC: first THR empty, then a byte fed by the main loop from the input fd.
 */
static void test_serial_irq(void)
{
    g_autoptr(GError) err = NULL;
    TestVm *vm;
    int in[2];
    gint64 deadline;

    if (skip_without_kvm()) {
        return;
    }
    vm = test_vm_new(16 << 20, 1);
    g_assert_no_errno(pipe2(in, O_CLOEXEC | O_NONBLOCK));
    vm->m->serial = serial_new(vm->m, -1, in[0], &err);
    g_assert_no_error(err);
    test_vm_write_tables(vm);
    test_vm_boot(vm, CODE_GPA + 0x400);

    g_assert_true(wait_for(&vm->ports.iir_writes, 1, 5000));
    g_assert_cmphex(vm->ports.iir_value & 0x0f, ==, 0x02);     /* THR empty */

    g_assert_cmpint(write(in[1], "Z", 1), ==, 1);
    deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!atomic_get(&vm->ports.byte_writes) && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(vm->m->main_context, FALSE);
        g_usleep(1000);
    }
    g_assert_cmpuint(atomic_get(&vm->ports.byte_writes), ==, 1);
    g_assert_cmphex(vm->ports.byte_value, ==, 'Z');
    g_assert_cmphex(vm->ports.iir_value & 0x0f, ==, 0x04);     /* received data */
    vm->m->accel->pause_vcpus(vm->m);
    test_vm_free(vm);
    close(in[0]);
    close(in[1]);
}

/* A booted test payload and the serial output read from it so far. */
typedef struct PayloadRun {
    TestVm *vm;
    int pipefd[2];
    GString *out;
} PayloadRun;

/* Boot the real test payload with the Multiboot loader; NULL when skipped. */
static PayloadRun *payload_start(const char *payload, unsigned smp, const char *cmdline)
{
    g_autoptr(GError) err = NULL;
    PayloadRun *run;
    Machine *m;

    if (skip_without_kvm()) {
        return NULL;
    }
    if (!g_file_test(payload, G_FILE_TEST_EXISTS)) {
        g_autofree char *why = g_strdup_printf("test payload not built (%s)", payload);
        g_test_skip(why);
        return NULL;
    }
    run = g_new0(PayloadRun, 1);
    run->out = g_string_new(NULL);
    run->vm = test_vm_new(256 << 20, smp);
    m = run->vm->m;
    g_assert_no_errno(pipe2(run->pipefd, O_CLOEXEC));
    m->serial = serial_new(m, run->pipefd[1], -1, &err);
    g_assert_no_error(err);
    debug_exit_init(m);
    g_assert_true(loader_load_kernel(m, payload, cmdline, NULL, &err));
    g_assert_no_error(err);
    g_assert_true(m->accel->start_vcpus(m, &err));
    m->accel->resume_vcpus(m);
    return run;
}

/* Read serial output until @needle appears after what was already read. */
static void payload_expect(PayloadRun *run, const char *needle, unsigned ms)
{
    size_t from = run->out->len;
    gint64 deadline = g_get_monotonic_time() + ms * 1000;

    while (!strstr(run->out->str + from, needle)) {
        struct pollfd p = { .fd = run->pipefd[0], .events = POLLIN };
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        char buf[4096];
        ssize_t n;

        if (left <= 0 || poll(&p, 1, left) <= 0) {
            break;
        }
        n = read(run->pipefd[0], buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        g_string_append_len(run->out, buf, n);
    }
    if (!strstr(run->out->str + from, needle)) {
        g_test_message("serial output:\n%s", run->out->str);
        g_error("no '%s' from the payload within %u ms", needle, ms);
    }
    g_assert_null(strstr(run->out->str, "PAYLOAD ERROR"));
    /* Every complete report so far says the guest's checks passed. */
    {
        g_auto(GStrv) lines = g_strsplit(run->out->str, "\n", -1);
        for (unsigned i = 0; lines[i] && lines[i + 1]; i++) {
            if (g_str_has_prefix(lines[i], "PROGRESS ")) {
                g_assert_nonnull(strstr(lines[i], " regs=ok"));
                g_assert_nonnull(strstr(lines[i], " errors=0"));
            }
        }
    }
}

static void payload_finish(PayloadRun *run)
{
    g_test_message("serial output:\n%s", run->out->str);
    run->vm->m->accel->pause_vcpus(run->vm->m);
    test_vm_free(run->vm);
    close(run->pipefd[0]);
    close(run->pipefd[1]);
    g_string_free(run->out, TRUE);
    g_free(run);
}

static void test_payload_progress(gconstpointer data)
{
    PayloadRun *run = payload_start(data, 1, "mem=0x2000000 report_ms=50");

    if (run) {
        payload_expect(run, "PROGRESS", 30000);
        g_assert_nonnull(strstr(run->out->str, "tsc_src=pit"));   /* port 0x61 works */
        payload_finish(run);
    }
}

/*
 * The payload starts its AP with INIT-SIPI-SIPI through the in-kernel LAPIC
 * and warns if it stays put. With both vCPUs sweeping, measure the pause.
 */
static void test_payload_two_cpus(gconstpointer data)
{
    PayloadRun *run = payload_start(data, 2, "mem=0x400000 report_ms=50 cpus=2");
    const unsigned rounds = 100;
    g_autofree gint64 *lat = g_new(gint64, rounds);
    Machine *m;

    if (!run) {
        return;
    }
    m = run->vm->m;
    payload_expect(run, "PAYLOAD READY", 30000);
    g_assert_null(strstr(run->out->str, "ap did not start"));
    for (unsigned i = 0; i < rounds; i++) {
        gint64 t0;
        g_usleep(2000);
        t0 = g_get_monotonic_time();
        m->accel->pause_vcpus(m);
        lat[i] = g_get_monotonic_time() - t0;
        m->accel->resume_vcpus(m);
    }
    qsort(lat, rounds, sizeof(lat[0]), cmp_int64);
    g_test_message("pause latency, 2 vCPUs sweeping (%u rounds): p50 %" G_GINT64_FORMAT
                   " us, p99 %" G_GINT64_FORMAT " us, max %" G_GINT64_FORMAT " us",
                   rounds, lat[rounds / 2], lat[rounds * 99 / 100], lat[rounds - 1]);
    payload_expect(run, "PROGRESS", 10000);
    payload_finish(run);
}

/*
 * Save every record of a long-mode guest on two vCPUs and load it straight
 * back: if anything were missing (an MSR, XSAVE, the LAPIC timer...), the
 * payload's register checksum or its memory check would fail afterwards.
 */
static void test_payload_state_reload(gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    PayloadRun *run = payload_start(data, 2, "mem=0x400000 report_ms=50 cpus=2");
    GArray *handlers;
    Machine *m;

    if (!run) {
        return;
    }
    m = run->vm->m;
    handlers = m->vmstate_handlers;
    payload_expect(run, "PAYLOAD READY", 30000);
    for (unsigned round = 0; round < 5; round++) {
        m->accel->pause_vcpus(m);
        for (guint i = 0; i < handlers->len; i++) {
            VMStateHandler *h = &g_array_index(handlers, VMStateHandler, i);
            g_autoptr(GByteArray) buf = g_byte_array_new();
            g_assert_true(h->save(h->opaque, buf, &err));
            g_assert_no_error(err);
            g_assert_true(h->load(h->opaque, buf->data, buf->len, h->version, &err));
            g_assert_no_error(err);
        }
        m->accel->resume_vcpus(m);
        payload_expect(run, "PROGRESS", 10000);
    }
    payload_expect(run, "regs=ok", 10000);
    payload_finish(run);
}

/* sweeps=1: the payload finishes and exits through the debug port. */
static void test_payload_exit(gconstpointer data)
{
    PayloadRun *run = payload_start(data, 1, "mem=0x400000 sweeps=1");
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    Machine *m;

    if (!run) {
        return;
    }
    m = run->vm->m;
    payload_expect(run, "PAYLOAD DONE", 30000);
    while (!m->shutdown_requested && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(m->main_context, FALSE);
        g_usleep(1000);
    }
    g_assert_true(m->shutdown_requested);
    g_assert_cmpstr(m->shutdown_reason, ==, "guest-shutdown");
    g_assert_cmpint(m->exit_status, ==, (0x10 << 1) | 1);
    payload_finish(run);
}

int main(int argc, char **argv)
{
    g_autofree char *dir = g_path_get_dirname(argv[0]);
    g_autofree char *payload = g_build_filename(dir, "..", "guest", "payload.elf", NULL);

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kvm/vm/create", test_create);
    g_test_add_func("/kvm/io/port-exits", test_port_io);
    g_test_add_func("/kvm/io/round-trip", test_exit_round_trip);
    g_test_add_func("/kvm/pause/port-loop", test_pause_port_loop);
    g_test_add_func("/kvm/pause/memory-loop", test_pause_memory_loop);
    g_test_add_func("/kvm/pause/two-vcpus", test_pause_two);
    g_test_add_func("/kvm/state/save-load", test_state_roundtrip);
    g_test_add_func("/kvm/state/after-in-exit", test_state_after_in_exit);
    g_test_add_func("/kvm/dirty-log/sync", test_dirty_log);
    g_test_add_func("/kvm/smp/init-sipi", test_init_sipi);
    g_test_add_func("/kvm/serial/irq", test_serial_irq);
    g_test_add_data_func("/kvm/payload/progress", payload, test_payload_progress);
    g_test_add_data_func("/kvm/payload/two-cpus", payload, test_payload_two_cpus);
    g_test_add_data_func("/kvm/payload/state-reload", payload, test_payload_state_reload);
    g_test_add_data_func("/kvm/payload/debug-exit", payload, test_payload_exit);
    return g_test_run();
}
