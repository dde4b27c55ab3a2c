/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the QEMU-style command line: options, comma syntax, sizes, errors. */
#include "system/cmdline.h"

#include <string.h>

#include "migration/migration.h"
#include "system/memory-backend.h"

static MachineConfig *parse(const char *line, GError **errp)
{
    g_auto(GStrv) argv = NULL;
    int argc;
    bool exit_now;

    g_assert_true(g_shell_parse_argv(line, &argc, &argv, NULL));
    return cmdline_parse(argc, argv, &exit_now, errp);
}

static void test_sizes(void)
{
    static const struct {
        const char *s;
        uint64_t unit;
        uint64_t want;
    } ok[] = {
        { "512", 1 << 20, 512ULL << 20 }, { "512M", 1, 512ULL << 20 },
        { "2G", 1, 2ULL << 30 }, { "4k", 1, 4096 }, { "1T", 1, 1ULL << 40 },
        { "4096", 1, 4096 }, { "2GiB", 1, 2ULL << 30 }, { "0x1000", 1, 4096 },
    };
    static const char *const bad[] = { "", "M", "12Q", "-5", "1G5", "99999999999999999999" };

    for (unsigned i = 0; i < G_N_ELEMENTS(ok); i++) {
        uint64_t v = 0;
        g_autoptr(GError) err = NULL;

        g_assert_true(cmdline_parse_size(ok[i].s, ok[i].unit, &v, &err));
        g_assert_no_error(err);
        g_assert_cmpuint(v, ==, ok[i].want);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        uint64_t v = 0;
        g_autoptr(GError) err = NULL;

        g_assert_false(cmdline_parse_size(bad[i], 1, &v, &err));
        g_assert_nonnull(err);
    }
}

static void test_keyval(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) h = cmdline_parse_keyval("unix:/tmp/a,,b,server=on,wait=off",
                                                   "path", &err);

    g_assert_no_error(err);
    g_assert_cmpstr(g_hash_table_lookup(h, "path"), ==, "unix:/tmp/a,b");
    g_assert_cmpstr(g_hash_table_lookup(h, "server"), ==, "on");
    g_assert_cmpstr(g_hash_table_lookup(h, "wait"), ==, "off");

    g_assert_null(cmdline_parse_keyval("path,=5", "x", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
}

static void test_full_line(void)
{
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-m 512 -smp 2 -accel test -kernel p.elf -append 'mem=128M order=random' "
                             "-qmp unix:/tmp/q.sock,server=on,wait=off -S -name vm1 "
                             "-serial file:/tmp/s.log -display none -incoming defer",
                             &err);

    g_assert_no_error(err);
    g_assert_nonnull(c);
    g_assert_cmpuint(c->ram_size, ==, 512ULL << 20);
    g_assert_cmpuint(c->smp, ==, 2);
    g_assert_cmpuint(c->nr_accels, ==, 1);
    g_assert_cmpint(c->accels[0], ==, ACCEL_KIND_TEST);
    g_assert_cmpstr(c->kernel, ==, "p.elf");
    g_assert_cmpstr(c->append, ==, "mem=128M order=random");
    g_assert_cmpuint(c->qmp->len, ==, 1);
    g_assert_true(c->start_paused);
    g_assert_cmpstr(c->name, ==, "vm1");
    g_assert_cmpstr(c->serial, ==, "file:/tmp/s.log");
    g_assert_cmpstr(c->incoming, ==, "defer");
    machine_config_free(c);
}

static void test_memory_backend_object(void)
{
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-object memory-backend-memfd,id=m0,size=1G,share=on "
                             "-machine pc,memory-backend=m0", &err);
    MemoryBackendOptions *o;

    g_assert_no_error(err);
    g_assert_cmpuint(c->objects->len, ==, 1);
    o = g_ptr_array_index(c->objects, 0);
    g_assert_cmpint(o->kind, ==, MEMORY_BACKEND_MEMFD);
    g_assert_cmpstr(o->id, ==, "m0");
    g_assert_cmpuint(o->size, ==, 1ULL << 30);
    g_assert_cmpstr(c->memory_backend_id, ==, "m0");
    machine_config_free(c);
}

/* Each bad line fails, and the message names the offending option. */
static void test_errors(void)
{
    static const struct {
        const char *line;
        const char *needle;
    } cases[] = {
        { "-bogus", "-bogus" },
        { "-m", "-m" },
        { "-m lots", "-m" },
        { "-m 1", "-m" },
        { "-smp 0", "-smp" },
        { "-smp 99", "-smp" },
        { "-accel hvf", "hvf" },
        { "-machine accel=kvm:xen", "xen" },
        { "-accel kvm -machine accel=test", "incompatible" },
        { "-machine accel=kvm -accel test", "incompatible" },
        /* Cross-option checks happen at parse time, before any device opens. */
        { "-qmp bogus:x", "bogus:x" },
        { "-monitor unix:/tmp/m.sock", "server=on" },
        { "-incoming gopher:x", "gopher:x" },
        { "-machine memory-backend=nope", "nope" },
        { "-m 256 -object memory-backend-ram,id=r,size=512M -machine memory-backend=r", "-m" },
        { "-accel kvm -accel test -append order=zigzag", "order=zigzag" },
        { "-accel test -m 64 -append mem=128M", "does not fit" },
        { "-machine q99", "q99" },
        { "-object memory-backend-ram,size=1G", "'id'" },
        { "-object memory-backend-file,id=x,size=1G", "mem-path" },
        { "-object iothread,id=x", "iothread" },
        { "-serial pty", "pty" },
        { "-display gtk", "gtk" },
        { "-device e1000", "e1000" },
        { "kernel.elf", "kernel.elf" },
        { "-machine pc,thp=maybe", "thp" },
        { "-accel test,x-vcpu-slice-us=50", "x-vcpu-slice-us=50" },
        { "-accel test,x-vcpu-slice-us=200000", "100000" },
        { "-accel test,x-vcpu-slice-us=fast", "x-vcpu-slice-us=fast" },
        { "-qmp unix:a -monitor", "-monitor" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        MachineConfig *c = parse(cases[i].line, &err);

        g_assert_null(c);
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].needle)) {
            g_error("'%s': message '%s' does not name '%s'", cases[i].line, err->message,
                    cases[i].needle);
        }
    }
}

static void test_defaults(void)
{
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-enable-kvm", &err);

    g_assert_no_error(err);
    g_assert_cmpuint(c->ram_size, ==, 128ULL << 20);
    g_assert_cmpuint(c->smp, ==, 1);
    g_assert_cmpuint(c->nr_accels, ==, 1);
    g_assert_cmpint(c->accels[0], ==, ACCEL_KIND_KVM);
    g_assert_cmpstr(c->serial, ==, "stdio");
    g_assert_false(c->start_paused);
    g_assert_true(c->thp);
    machine_config_free(c);
}

/* Accelerators are tried in the order named, from -accel or -machine accel=. */
static void test_accel_lists(void)
{
    static const struct {
        const char *line;
        unsigned n;
        AccelKind want[3];
    } cases[] = {
        { "-display none", 1, { ACCEL_KIND_KVM } },
        { "-m 512 -accel kvm -accel test", 2, { ACCEL_KIND_KVM, ACCEL_KIND_TEST } },
        { "-m 512 -accel tcg -accel test", 2, { ACCEL_KIND_TCG, ACCEL_KIND_TEST } },
        { "-m 512 -machine pc,accel=kvm:tcg:test", 3,
          { ACCEL_KIND_KVM, ACCEL_KIND_TCG, ACCEL_KIND_TEST } },
        { "-m 512 -machine accel=test -machine accel=kvm", 1, { ACCEL_KIND_KVM } },
        { "-m 512 -enable-kvm -accel test", 2, { ACCEL_KIND_KVM, ACCEL_KIND_TEST } },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        MachineConfig *c = parse(cases[i].line, &err);

        g_assert_no_error(err);
        g_assert_cmpuint(c->nr_accels, ==, cases[i].n);
        for (unsigned k = 0; k < cases[i].n; k++) {
            g_assert_cmpint(c->accels[k], ==, cases[i].want[k]);
        }
        machine_config_free(c);
    }
}

/* x-vcpu-slice-us: unset (frostvm's 100 us), a value, or 0 for the kernel's own slice. */
static void test_vcpu_slice(void)
{
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-m 512 -accel test", &err);

    g_assert_no_error(err);
    g_assert_false(c->vcpu_slice_set);
    machine_config_free(c);
    c = parse("-m 512 -accel kvm,x-vcpu-slice-us=250 -accel test", &err);
    g_assert_no_error(err);
    g_assert_true(c->vcpu_slice_set);
    g_assert_cmpuint(c->vcpu_slice_us, ==, 250);
    g_assert_cmpuint(c->nr_accels, ==, 2);
    machine_config_free(c);
    c = parse("-m 512 -accel test,x-vcpu-slice-us=0", &err);
    g_assert_no_error(err);
    g_assert_true(c->vcpu_slice_set);
    g_assert_cmpuint(c->vcpu_slice_us, ==, 0);
    machine_config_free(c);
}

/* -global migration.restore-mode chooses how -incoming restores a page-aligned image. */
static void test_global_restore_mode(void)
{
    static const char *const bad[] = {
        "-accel test -global migration.restore-mode=fast",
        "-accel test -global migration.downtime-limit=5",
        "-accel test -global kvm-pit.lost_tick_policy=discard",
    };
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-accel test -m 512 -global migration.restore-mode=map -incoming defer",
                             &err);

    g_assert_no_error(err);
    g_assert_cmpstr(c->restore_mode, ==, "map");
    machine_config_free(c);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) e = NULL;

        g_assert_null(parse(bad[i], &e));
        g_assert_nonnull(e);
        g_assert_nonnull(strstr(e->message, "-global"));
    }
}

/* -global migration.x-CAP=on|off sets a capability before -incoming runs, as QEMU's properties. */
static void test_global_capability(void)
{
    static const struct {
        const char *line;
        const char *needle;
    } bad[] = {
        { "-accel test -m 512 -global migration.x-no-such-thing=on", "no migration capability" },
        { "-accel test -m 512 -global migration.x-incremental-snapshot=maybe",
          "expects 'on' or 'off', not 'maybe'" },
    };
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-accel test -m 512 -global migration.x-incremental-snapshot=on "
                             "-global migration.x-background-snapshot=off -incoming defer",
                             &err);

    g_assert_no_error(err);
    g_assert_nonnull(c->capabilities);
    g_assert_cmpuint(c->capabilities->len, ==, 2);
    MachineCapabilitySetting *set = &g_array_index(c->capabilities, MachineCapabilitySetting, 0);
    g_assert_cmpint(set[0].cap, ==, MIGRATION_CAPABILITY_INCREMENTAL_SNAPSHOT);
    g_assert_true(set[0].on);
    g_assert_cmpint(set[1].cap, ==, MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT);
    g_assert_false(set[1].on);
    machine_config_free(c);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) e = NULL;

        g_assert_null(parse(bad[i].line, &e));
        g_assert_nonnull(e);
        g_assert_nonnull(strstr(e->message, bad[i].needle));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cmdline/sizes", test_sizes);
    g_test_add_func("/cmdline/keyval", test_keyval);
    g_test_add_func("/cmdline/full-line", test_full_line);
    g_test_add_func("/cmdline/memory-backend-object", test_memory_backend_object);
    g_test_add_func("/cmdline/errors", test_errors);
    g_test_add_func("/cmdline/vcpu-slice", test_vcpu_slice);
    g_test_add_func("/cmdline/defaults", test_defaults);
    g_test_add_func("/cmdline/global-capability", test_global_capability);
    g_test_add_func("/cmdline/accel-lists", test_accel_lists);
    g_test_add_func("/cmdline/global-restore-mode", test_global_restore_mode);
    return g_test_run();
}
