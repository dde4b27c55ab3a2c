/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The test accelerator (-accel test): host threads stand in for vCPUs and write
 * guest RAM exactly as the test payload does, so the monitor and the whole
 * migration path run and are tested on machines without /dev/kvm. This file
 * owns the AccelOps: set-up, pause/resume, dirty tracking, device state.
 */
#include "accel/accel.h"

#include <string.h>

#include "accel/test/test-accel.h"
#include "migration/vmstate.h"
#include "system/cmdline.h"
#include "util/error.h"

#define TEST_VCPU_STATE_VERSION 1

bool test_workload_parse(TestWorkload *w, const char *append, GError **errp)
{
    g_auto(GStrv) words = g_strsplit(append ? append : "", " ", -1);

    *w = (TestWorkload) {
        .base = PAYLOAD_DEFAULT_BASE,
        .mem = PAYLOAD_DEFAULT_MEM,
        .order = PAYLOAD_ORDER_SEQ,
        .seed = PAYLOAD_DEFAULT_SEED,
        .report_ms = PAYLOAD_DEFAULT_REPORT_MS,
        .rate = 100000,
    };
    for (char **p = words; *p; p++) {
        char *eq = strchr(*p, '=');
        const char *v;

        if (!eq) {
            continue;
        }
        *eq = '\0';
        v = eq + 1;
        if (!strcmp(*p, "base") || !strcmp(*p, "mem")) {
            if (!cmdline_parse_size(v, 1, !strcmp(*p, "base") ? &w->base : &w->mem, errp)) {
                g_prefix_error(errp, "-accel test: %s=: ", *p);
                return false;
            }
        } else if (!strcmp(*p, "order")) {
            if (strcmp(v, "seq") && strcmp(v, "random")) {
                error_setg(errp, "-accel test: order=%s: expected seq or random", v);
                return false;
            }
            w->order = strcmp(v, "seq") ? PAYLOAD_ORDER_RANDOM : PAYLOAD_ORDER_SEQ;
        } else if (!strcmp(*p, "seed")) {
            w->seed = g_ascii_strtoull(v, NULL, 0);
        } else if (!strcmp(*p, "report_ms")) {
            w->report_ms = MAX(1, g_ascii_strtoull(v, NULL, 0));
        } else if (!strcmp(*p, "sweeps")) {
            w->sweeps = g_ascii_strtoull(v, NULL, 0);
        } else if (!strcmp(*p, "idle")) {
            w->idle = strcmp(v, "0") != 0;
        } else if (!strcmp(*p, "rate")) {
            w->rate = g_ascii_strtoull(v, NULL, 0);
        } else if (!strcmp(*p, "hot")) {
            if (!cmdline_parse_size(v, 1, &w->hot, errp)) {
                g_prefix_error(errp, "-accel test: hot=: ");
                return false;
            }
        }
    }
    if (w->base % PAYLOAD_PAGE_SIZE || w->mem % PAYLOAD_PAGE_SIZE || !w->mem) {
        error_setg(errp, "-accel test: base= and mem= must be non-zero multiples of 4 KiB");
        return false;
    }
    return true;
}

static bool test_vcpu_save(void *opaque, GByteArray *buf, GError **errp)
{
    TestVcpu *v = opaque;

    vmstate_put_u64(buf, v->reg_steps);
    vmstate_put_u64(buf, v->reg_csum);
    vmstate_put_u64(buf, v->sweep);
    vmstate_put_u64(buf, v->pos);
    vmstate_put_u64(buf, v->perm_x);
    vmstate_put_u64(buf, v->t_start ? (uint64_t)(g_get_monotonic_time() - v->t_start)
                                    : v->elapsed_us);
    vmstate_put_u32(buf, v->stopped);
    return true;
}

static bool test_vcpu_load(void *opaque, const uint8_t *data, size_t len, uint32_t version,
                           GError **errp)
{
    TestVcpu *v = opaque;
    VMStateReader r;

    vmstate_reader_init(&r, data, len);
    v->reg_steps = vmstate_get_u64(&r);
    v->reg_csum = vmstate_get_u64(&r);
    v->sweep = vmstate_get_u64(&r);
    v->pos = vmstate_get_u64(&r);
    v->perm_x = vmstate_get_u64(&r);
    v->elapsed_us = vmstate_get_u64(&r);
    v->stopped = vmstate_get_u32(&r);
    if (!vmstate_reader_finish(&r, "test-cpu", errp)) {
        return false;
    }
    v->accel->restored = true;
    return true;
}

/* Whether [gpa, gpa + len) lies inside one RAM range of a PC with @ram_size bytes. */
static bool test_range_is_ram(uint64_t ram_size, uint64_t gpa, uint64_t len)
{
    uint64_t low = MIN(ram_size, MACHINE_LOW_RAM_END);

    if (gpa + len < gpa) {
        return false;
    }
    if (gpa + len <= low) {
        return true;
    }
    return gpa >= MACHINE_HIGH_RAM_START &&
           gpa + len <= MACHINE_HIGH_RAM_START + (ram_size - low);
}

/* The workload's bookkeeping and range must be RAM, the range above the bookkeeping. */
static bool test_workload_fits(const TestWorkload *w, uint64_t ram_size, GError **errp)
{
    uint64_t npages = w->mem / PAYLOAD_PAGE_SIZE;
    uint64_t ctl_end = PAYLOAD_EXPECTED_GPA + npages * sizeof(uint32_t);

    if (!test_range_is_ram(ram_size, PAYLOAD_CTL_GPA, ctl_end - PAYLOAD_CTL_GPA) ||
        !test_range_is_ram(ram_size, w->base, w->mem) || w->base < ctl_end) {
        error_setg(errp, "-accel test: the range base=0x%" G_GINT64_MODIFIER "x mem=%"
                   G_GUINT64_FORMAT " MiB does not fit in %" G_GUINT64_FORMAT
                   " MiB of RAM above the payload's bookkeeping (which ends at 0x%"
                   G_GINT64_MODIFIER "x)", w->base, w->mem >> 20, ram_size >> 20, ctl_end);
        return false;
    }
    return true;
}

bool test_accel_check_config(const MachineConfig *c, GError **errp)
{
    TestWorkload w;

    return test_workload_parse(&w, c->append, errp) &&
           test_workload_fits(&w, c->ram_size, errp);
}

static bool test_accel_init(Machine *m, GError **errp)
{
    TestAccel *a = g_new0(TestAccel, 1);
    uint64_t npages;

    a->m = m;
    g_mutex_init(&a->lock);
    g_cond_init(&a->cond);
    m->accel_state = a;
    if (!test_workload_parse(&a->work, m->config->append, errp) ||
        !test_workload_fits(&a->work, m->ram_size, errp)) {
        return false;
    }
    npages = a->work.mem / PAYLOAD_PAGE_SIZE;
    a->ctl = machine_gpa_to_host(m, PAYLOAD_CTL_GPA, sizeof(PayloadCtl));
    a->expected = machine_gpa_to_host(m, PAYLOAD_EXPECTED_GPA, npages * sizeof(uint32_t));
    a->range = machine_gpa_to_host(m, a->work.base, a->work.mem);
    g_assert(a->ctl && a->expected && a->range);
    for (unsigned i = 0; i < m->smp; i++) {
        TestVcpu *v = &a->vcpus[i];
        VMStateHandler h = {
            .name = "test-cpu",
            .instance = i,
            .version = TEST_VCPU_STATE_VERSION,
            .save = test_vcpu_save,
            .load = test_vcpu_load,
            .opaque = v,
        };

        v->accel = a;
        v->index = i;
        vmstate_register(m, &h);
    }
    return true;
}

static bool test_accel_set_boot_entry(Machine *m, uint32_t entry, uint32_t eax, uint32_t ebx,
                                      GError **errp)
{
    /* Host threads run no guest code; a loaded kernel just sits in RAM. */
    return true;
}

static bool test_accel_start_vcpus(Machine *m, GError **errp)
{
    TestAccel *a = m->accel_state;

    /* Threads start parked; resume_vcpus() lets them go. */
    g_atomic_int_set(&a->pause_requested, 1);
    for (unsigned i = 0; i < m->smp; i++) {
        g_autofree char *name = g_strdup_printf("test-vcpu%u", i);

        a->vcpus[i].thread = g_thread_new(name, test_vcpu_thread, &a->vcpus[i]);
        a->nr_running++;
    }
    g_mutex_lock(&a->lock);
    while (a->parked < a->nr_running) {
        g_cond_wait(&a->cond, &a->lock);
    }
    g_mutex_unlock(&a->lock);
    return true;
}

bool test_vcpu_checkpoint(TestVcpu *v)
{
    TestAccel *a = v->accel;
    bool run;

    if (G_LIKELY(!g_atomic_int_get(&a->pause_requested))) {
        return true;
    }
    g_mutex_lock(&a->lock);
    __atomic_store_n(&a->parked, a->parked + 1, __ATOMIC_RELEASE);
    g_cond_broadcast(&a->cond);
    while (a->pause_requested && !a->quit) {
        g_cond_wait(&a->cond, &a->lock);
    }
    __atomic_store_n(&a->parked, a->parked - 1, __ATOMIC_RELEASE);
    run = !a->quit;
    g_mutex_unlock(&a->lock);
    return run;
}

void test_vcpu_sleep(TestVcpu *v, gint64 us)
{
    TestAccel *a = v->accel;
    gint64 end = g_get_monotonic_time() + us;

    /*
     * Stopping the VM must not wait for the sleep to end: with two vCPUs,
     * one that parked at once stood still while the other finished its 1 ms
     * pacing sleep, a stall of the guest that KVM would not cause.
     */
    g_mutex_lock(&a->lock);
    while (!g_atomic_int_get(&a->pause_requested) && !a->quit) {
        if (!g_cond_wait_until(&a->cond, &a->lock, end)) {
            break;
        }
    }
    g_mutex_unlock(&a->lock);
}

static void test_accel_pause_vcpus(Machine *m)
{
    TestAccel *a = m->accel_state;

    g_mutex_lock(&a->lock);
    g_atomic_int_set(&a->pause_requested, 1);
    g_cond_broadcast(&a->cond);     /* the kick: sleeping vCPUs wake to park */
    if (machine_pause_may_spin(a->m)) {
        unsigned waiting_for = a->nr_running - a->blocked;

        g_mutex_unlock(&a->lock);
        machine_pause_wait_spin(a->m, &a->parked, 0, waiting_for);
        g_mutex_lock(&a->lock);
    }
    while (a->parked + a->blocked < a->nr_running) {
        g_cond_wait(&a->cond, &a->lock);
    }
    g_mutex_unlock(&a->lock);
}

static void test_accel_vcpu_blocked(Machine *m, int tid)
{
    TestAccel *a = m->accel_state;

    g_mutex_lock(&a->lock);
    for (unsigned i = 0; i < MACHINE_MAX_VCPUS; i++) {
        TestVcpu *v = &a->vcpus[i];
        if (v->thread && !v->blocked &&
            __atomic_load_n(&v->kernel_tid, __ATOMIC_ACQUIRE) == tid) {
            v->blocked = true;
            a->blocked++;
            g_cond_broadcast(&a->cond);
        }
    }
    g_mutex_unlock(&a->lock);
}

static void test_accel_resume_vcpus(Machine *m)
{
    TestAccel *a = m->accel_state;

    g_mutex_lock(&a->lock);
    g_atomic_int_set(&a->pause_requested, 0);
    g_cond_broadcast(&a->cond);
    g_mutex_unlock(&a->lock);
}

static bool test_accel_dirty_log_start(Machine *m, GError **errp)
{
    TestAccel *a = m->accel_state;
    RamBlock *b = g_ptr_array_index(m->ram_blocks, 0);
    uint64_t words = (b->size / MACHINE_PAGE_SIZE + 63) / 64;

    /*
     * The bitmap lives until destroy: writers test dirty_on and then set bits
     * without a lock, so freeing it on stop would race with them.
     */
    if (!a->dirty) {
        a->dirty_pages = b->size / MACHINE_PAGE_SIZE;
        a->dirty = g_new0(unsigned long, words);
    }
    for (uint64_t w = 0; w < words; w++) {
        __atomic_store_n(&a->dirty[w], 0, __ATOMIC_RELAXED);
    }
    g_atomic_int_set(&a->dirty_on, 1);
    return true;
}

static bool test_accel_dirty_log_sync(Machine *m, RamBlock *block, unsigned long *bitmap,
                                      GError **errp)
{
    TestAccel *a = m->accel_state;

    if (!g_atomic_int_get(&a->dirty_on)) {
        error_setg(errp, "dirty logging is not started");
        return false;
    }
    for (uint64_t w = 0; w < (a->dirty_pages + 63) / 64; w++) {
        bitmap[w] |= __atomic_exchange_n(&a->dirty[w], 0, __ATOMIC_ACQ_REL);
    }
    return true;
}

static void test_accel_dirty_log_stop(Machine *m)
{
    TestAccel *a = m->accel_state;

    g_atomic_int_set(&a->dirty_on, 0);
}

static void test_accel_destroy(Machine *m)
{
    TestAccel *a = m->accel_state;

    if (!a) {
        return;
    }
    g_mutex_lock(&a->lock);
    a->quit = true;
    g_atomic_int_set(&a->pause_requested, 1);
    g_cond_broadcast(&a->cond);
    g_mutex_unlock(&a->lock);
    for (unsigned i = 0; i < MACHINE_MAX_VCPUS; i++) {
        if (a->vcpus[i].thread) {
            g_thread_join(a->vcpus[i].thread);
        }
    }
    g_free(a->dirty);
    g_mutex_clear(&a->lock);
    g_cond_clear(&a->cond);
    g_free(a);
    m->accel_state = NULL;
}

static int test_accel_vcpu_thread_id(Machine *m, unsigned index)
{
    TestAccel *a = m->accel_state;

    return index < m->smp ? __atomic_load_n(&a->vcpus[index].kernel_tid, __ATOMIC_ACQUIRE) : 0;
}

const AccelOps test_accel_ops = {
    .name = "test",
    .init = test_accel_init,
    .set_boot_entry = test_accel_set_boot_entry,
    .start_vcpus = test_accel_start_vcpus,
    .pause_vcpus = test_accel_pause_vcpus,
    .resume_vcpus = test_accel_resume_vcpus,
    .dirty_log_start = test_accel_dirty_log_start,
    .dirty_log_sync = test_accel_dirty_log_sync,
    .dirty_log_stop = test_accel_dirty_log_stop,
    .vcpu_thread_id = test_accel_vcpu_thread_id,
    .vcpu_blocked = test_accel_vcpu_blocked,
    .destroy = test_accel_destroy,
};
