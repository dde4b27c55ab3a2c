/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the QEMU-style command line: options, comma syntax, sizes, errors. */
#include "system/cmdline.h"

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
    g_assert_cmpint(c->accel, ==, ACCEL_KIND_TEST);
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
        { "-accel tcg", "tcg" },
        { "-machine q99", "q99" },
        { "-object memory-backend-ram,size=1G", "'id'" },
        { "-object memory-backend-file,id=x,size=1G", "mem-path" },
        { "-object iothread,id=x", "iothread" },
        { "-serial pty", "pty" },
        { "-display gtk", "gtk" },
        { "-device e1000", "e1000" },
        { "kernel.elf", "kernel.elf" },
        { "-machine pc,thp=maybe", "thp" },
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
    g_assert_cmpint(c->accel, ==, ACCEL_KIND_KVM);
    g_assert_cmpstr(c->serial, ==, "stdio");
    g_assert_false(c->start_paused);
    g_assert_true(c->thp);
    machine_config_free(c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cmdline/sizes", test_sizes);
    g_test_add_func("/cmdline/keyval", test_keyval);
    g_test_add_func("/cmdline/full-line", test_full_line);
    g_test_add_func("/cmdline/memory-backend-object", test_memory_backend_object);
    g_test_add_func("/cmdline/errors", test_errors);
    g_test_add_func("/cmdline/defaults", test_defaults);
    return g_test_run();
}
