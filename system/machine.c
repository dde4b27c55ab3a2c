/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Building and tearing down the machine: RAM, layout, accelerator, devices. */
#include "system/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "accel/accel.h"
#include "hw/debug-exit.h"
#include "hw/ioport.h"
#include "hw/loader.h"
#include "hw/pc.h"
#include "hw/serial.h"
#include "system/chardev.h"
#include "system/cmdline.h"
#include "system/memory-backend.h"
#include "util/cpu-relax.h"
#include "util/error.h"

void machine_set_pause_spin(Machine *m, bool spin)
{
    __atomic_store_n(&m->pause_spin, spin, __ATOMIC_RELEASE);
}

bool machine_pause_may_spin(Machine *m)
{
    return __atomic_load_n(&m->pause_spin, __ATOMIC_ACQUIRE);
}

#define PAUSE_SPIN_US 500

void machine_pause_wait_spin(Machine *m, const unsigned *parked, unsigned self,
                             unsigned threads)
{
    if (!machine_pause_may_spin(m)) {
        return;
    }
    gint64 end = g_get_monotonic_time() + PAUSE_SPIN_US;

    while (__atomic_load_n(parked, __ATOMIC_ACQUIRE) + self < threads &&
           g_get_monotonic_time() < end) {
        cpu_relax();
    }
}

void *machine_gpa_to_host(Machine *m, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < m->nr_ram_ranges; i++) {
        GuestRamRange *r = &m->ram_ranges[i];

        if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len) {
            return r->block->host + r->offset + (gpa - r->gpa);
        }
    }
    return NULL;
}

RamBlock *machine_find_ram_block(Machine *m, const char *name)
{
    for (unsigned i = 0; m->ram_blocks && i < m->ram_blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(m->ram_blocks, i);

        if (!strcmp(b->name, name)) {
            return b;
        }
    }
    return NULL;
}

static void ram_block_free(gpointer p)
{
    RamBlock *b = p;

    memory_backend_free(b->backend);
    g_free(b->name);
    g_free(b);
}

/* The backend -machine memory-backend=ID names (checked by cmdline_check()), or an
 * anonymous one of -m's size. */
static MemoryBackend *machine_create_ram_backend(MachineConfig *c, GError **errp)
{
    g_autoptr(GError) err = NULL;
    MemoryBackendOptions *opts = NULL;
    MemoryBackend *b;

    if (c->memory_backend_id) {
        for (unsigned i = 0; i < c->objects->len; i++) {
            MemoryBackendOptions *o = g_ptr_array_index(c->objects, i);

            if (!g_strcmp0(o->id, c->memory_backend_id)) {
                opts = o;
            }
        }
        g_assert(opts);
        return memory_backend_new(opts, errp);
    }

    opts = memory_backend_options_new(MEMORY_BACKEND_RAM);
    opts->id = g_strdup("pc.ram");
    opts->size = c->ram_size;
    opts->thp = c->thp;
    opts->dontdump = !c->dump_guest_core;
    b = memory_backend_new(opts, &err);
    memory_backend_options_free(opts);
    if (!b) {
        g_propagate_error(errp, g_steal_pointer(&err));
    }
    return b;
}

static const AccelOps *machine_accel_ops(AccelKind kind)
{
    switch (kind) {
    case ACCEL_KIND_KVM:
        return &kvm_accel_ops;
    case ACCEL_KIND_TEST:
        return &test_accel_ops;
    default:
        return NULL;
    }
}

/*
 * Try the configured accelerators in order, as QEMU does with repeated -accel
 * options; the first whose init works is used. The failures of those passed
 * over go into m->accel_fallback_note for main to print, and all of them into
 * the error when none works.
 */
static bool machine_init_accel(Machine *m, GError **errp)
{
    MachineConfig *c = m->config;
    g_autoptr(GString) tried = g_string_new(NULL);

    for (unsigned i = 0; i < c->nr_accels; i++) {
        const char *name = cmdline_accel_name(c->accels[i]);
        const AccelOps *ops = machine_accel_ops(c->accels[i]);
        guint nr_handlers = m->vmstate_handlers ? m->vmstate_handlers->len : 0;
        g_autoptr(GError) err = NULL;

        if (!ops) {
            error_setg(&err, "accelerator '%s' is not available: frostvm has no TCG (it "
                       "runs guests on KVM; -accel test runs host threads that write "
                       "guest RAM)", name);
        } else if (ops->init(m, &err)) {
            m->accel = ops;
            if (tried->len) {
                m->accel_fallback_note = g_strdup_printf("%s; using %s", tried->str, name);
            }
            return true;
        } else {
            /* A partial init leaves state behind; the next accelerator starts clean. */
            ops->destroy(m);
            if (m->vmstate_handlers) {
                g_array_set_size(m->vmstate_handlers, nr_handlers);
            }
        }
        g_string_append_printf(tried, "%s-accel %s: %s", tried->len ? "; " : "", name,
                               err->message);
        if (c->nr_accels == 1) {
            g_propagate_error(errp, g_steal_pointer(&err));
            return false;
        }
    }
    error_setg(errp, "no accelerator could be used (%s)", tried->str);
    return false;
}

/* COM1 on a -chardev (-device isa-serial,chardev=ID). */
static void machine_open_serial_chardev(Machine *m, int *out_fd, int *in_fd)
{
    Chardev *chr = chardev_find(m, m->config->serial_chardev);

    switch (chr->opts->kind) {
    case CHARDEV_PTY:
        *out_fd = dup(chr->fd);
        *in_fd = dup(chr->fd);
        break;
    case CHARDEV_FILE:
        *out_fd = dup(chr->fd);
        break;
    case CHARDEV_STDIO:
        *out_fd = dup(STDOUT_FILENO);
        *in_fd = dup(STDIN_FILENO);
        break;
    default:
        break;
    }
}

/* Where the guest's COM1 output goes and where its input comes from. */
static bool machine_open_serial(Machine *m, int *out_fd, int *in_fd, GError **errp)
{
    const char *spec = m->config->serial;

    *out_fd = -1;
    *in_fd = -1;
    if (m->config->serial_chardev) {
        machine_open_serial_chardev(m, out_fd, in_fd);
        return true;
    }
    if (!spec || !strcmp(spec, "null") || !strcmp(spec, "none")) {
        return true;
    }
    if (!strcmp(spec, "stdio")) {
        *out_fd = dup(STDOUT_FILENO);
        /* HMP on stdio owns stdin; then the serial port is output only. */
        for (unsigned i = 0; i < m->config->monitors->len; i++) {
            if (!strcmp(g_ptr_array_index(m->config->monitors, i), "stdio")) {
                return true;
            }
        }
        *in_fd = isatty(STDIN_FILENO) || !m->config->daemonize ? dup(STDIN_FILENO) : -1;
        return true;
    }
    if (g_str_has_prefix(spec, "file:")) {
        /* What the guest prints is its data: private, as images are. */
        *out_fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (*out_fd < 0) {
            error_setg_errno(errp, errno, "-serial %s: cannot open '%s'", spec, spec + 5);
            return false;
        }
        return true;
    }
    error_setg(errp, "-serial: '%s' is not supported", spec);
    return false;
}

Machine *machine_alloc(MachineConfig *config)
{
    Machine *m = g_new0(Machine, 1);

    m->config = config;
    m->main_context = g_main_context_ref_thread_default();
    g_mutex_init(&m->runstate_lock);
    g_mutex_init(&m->transition_lock);
    m->runstate = RUN_STATE_PRELAUNCH;
    m->serial_out_fd = -1;
    m->serial_in_fd = -1;
    m->ram_blocks = g_ptr_array_new_with_free_func(ram_block_free);
    cpu_throttle_init(&m->throttle, m);
    return m;
}

Machine *machine_new(MachineConfig *config, GError **errp)
{
    g_autoptr(GError) err = NULL;
    Machine *m = machine_alloc(config);
    RamBlock *block;
    MemoryBackend *backend;

    m->smp = config->smp;

    backend = machine_create_ram_backend(config, &err);
    if (!backend) {
        goto fail;
    }
    block = g_new0(RamBlock, 1);
    block->name = g_strdup("pc.ram");
    block->backend = backend;
    block->host = backend->host;
    block->size = backend->size;
    block->page_size = backend->page_size;
    g_ptr_array_add(m->ram_blocks, block);
    m->ram_size = block->size;
    if (!pc_ram_layout_init(m, block, &err)) {
        goto fail;
    }

    if (!machine_init_accel(m, &err)) {
        goto fail;
    }
    if (!chardevs_open(m, &err) ||
        !machine_open_serial(m, &m->serial_out_fd, &m->serial_in_fd, &err)) {
        goto fail;
    }
    m->serial = serial_new(m, m->serial_out_fd, m->serial_in_fd, &err);
    if (!m->serial) {
        goto fail;
    }
    if (config->serial_chardev) {
        Chardev *chr = chardev_find(m, config->serial_chardev);

        serial_set_drop_when_full(m->serial, chr->opts->kind == CHARDEV_PTY);
    }
    debug_exit_init(m);
    return m;

fail:
    g_propagate_error(errp, g_steal_pointer(&err));
    machine_free(m);
    return NULL;
}

bool machine_load_kernel(Machine *m, GError **errp)
{
    if (!m->config->kernel) {
        error_setg(errp, "no kernel given: use -kernel FILE (a Multiboot image such as "
                   "the test payload), or -incoming to load a snapshot");
        return false;
    }
    return loader_load_kernel(m, m->config->kernel, m->config->append,
                              m->config->initrd, errp);
}

void machine_free(Machine *m)
{
    if (!m) {
        return;
    }
    /* A throttled vCPU asleep must wake for the join, and the kicker must end. */
    cpu_throttle_stop(&m->throttle);
    if (m->accel) {
        m->accel->destroy(m);
    }
    cpu_throttle_destroy(&m->throttle);
    if (m->serial) {
        serial_free(m->serial);
    }
    if (m->serial_out_fd >= 0) {
        close(m->serial_out_fd);
    }
    if (m->serial_in_fd >= 0) {
        close(m->serial_in_fd);
    }
    chardevs_close(m);
    ioport_table_free(m);
    if (m->vmstate_handlers) {
        g_array_unref(m->vmstate_handlers);
    }
    g_ptr_array_unref(m->ram_blocks);
    if (m->main_context) {
        g_main_context_unref(m->main_context);
    }
    g_mutex_clear(&m->runstate_lock);
    g_mutex_clear(&m->transition_lock);
    g_free(m->shutdown_reason);
    g_free(m->accel_fallback_note);
    g_free(m);
}
