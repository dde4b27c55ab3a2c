/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QEMU-style command line subset frostvm understands, parsed into MachineConfig. */
#include "system/cmdline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config-host.h"
#include "system/memory-backend.h"
#include "util/error.h"

bool cmdline_parse_size(const char *s, uint64_t default_unit, uint64_t *out,
                        GError **errp)
{
    char *end;
    uint64_t v, unit = default_unit;

    if (!s || !g_ascii_isdigit(*s)) {
        error_setg(errp, "'%s' is not a size (expected a number with an optional "
                   "K, M, G or T suffix)", s ? s : "");
        return false;
    }
    errno = 0;
    v = g_ascii_strtoull(s, &end, 0);
    if (errno) {
        error_setg(errp, "size '%s' is out of range", s);
        return false;
    }
    switch (g_ascii_toupper(*end)) {
    case '\0': break;
    case 'B': unit = 1; end++; break;
    case 'K': unit = 1ULL << 10; end++; break;
    case 'M': unit = 1ULL << 20; end++; break;
    case 'G': unit = 1ULL << 30; end++; break;
    case 'T': unit = 1ULL << 40; end++; break;
    default:
        error_setg(errp, "size '%s' has an unknown suffix '%s'", s, end);
        return false;
    }
    if (*end && !(g_ascii_toupper(*end) == 'B' && !end[1]) &&
        !(g_ascii_toupper(*end) == 'I' && g_ascii_toupper(end[1]) == 'B' && !end[2])) {
        error_setg(errp, "size '%s' has trailing characters '%s'", s, end);
        return false;
    }
    if (v > UINT64_MAX / unit) {
        error_setg(errp, "size '%s' is out of range", s);
        return false;
    }
    *out = v * unit;
    return true;
}

bool cmdline_parse_bool(const char *key, const char *s, bool *out, GError **errp)
{
    if (!g_strcmp0(s, "on") || !g_strcmp0(s, "yes") || !g_strcmp0(s, "true")) {
        *out = true;
        return true;
    }
    if (!g_strcmp0(s, "off") || !g_strcmp0(s, "no") || !g_strcmp0(s, "false")) {
        *out = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off', not '%s'", key, s ? s : "");
    return false;
}

GHashTable *cmdline_parse_keyval(const char *s, const char *implied_key, GError **errp)
{
    g_autoptr(GHashTable) h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    const char *p = s;
    bool first = true;

    while (*p) {
        g_autoptr(GString) item = g_string_new(NULL);
        char *eq;

        /* ",," stands for a literal comma, as in QEMU. */
        while (*p) {
            if (*p == ',') {
                if (p[1] == ',') {
                    g_string_append_c(item, ',');
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            g_string_append_c(item, *p++);
        }
        if (item->len == 0) {
            error_setg(errp, "'%s': empty element in option list", s);
            return NULL;
        }
        eq = strchr(item->str, '=');
        if (!eq) {
            if (first && implied_key) {
                g_hash_table_replace(h, g_strdup(implied_key), g_strdup(item->str));
            } else {
                /* A bare flag ("server", "nowait") means on, as in old QEMU syntax. */
                g_hash_table_replace(h, g_strdup(item->str), g_strdup("on"));
            }
        } else {
            *eq = '\0';
            if (!*item->str) {
                error_setg(errp, "'%s': missing key before '='", s);
                return NULL;
            }
            g_hash_table_replace(h, g_strdup(item->str), g_strdup(eq + 1));
        }
        first = false;
    }
    return g_steal_pointer(&h);
}

void machine_config_free(MachineConfig *c)
{
    if (!c) {
        return;
    }
    g_free(c->kernel);
    g_free(c->initrd);
    g_free(c->append);
    g_free(c->name);
    g_free(c->pidfile);
    g_free(c->incoming);
    g_free(c->restore_mode);
    g_free(c->serial);
    g_free(c->memory_backend_id);
    if (c->qmp) {
        g_ptr_array_unref(c->qmp);
    }
    if (c->monitors) {
        g_ptr_array_unref(c->monitors);
    }
    if (c->objects) {
        g_ptr_array_unref(c->objects);
    }
    g_free(c);
}

/* Reject keys of @h not in @allowed (NULL-terminated), naming the option. */
static bool check_keys(const char *opt, GHashTable *h, const char *const *allowed,
                       GError **errp)
{
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, h);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_strv_contains(allowed, key)) {
            error_setg(errp, "%s: unknown parameter '%s'", opt, (char *)key);
            return false;
        }
    }
    return true;
}

static bool parse_memory_size(MachineConfig *c, const char *arg, GError **errp)
{
    static const char *const keys[] = { "size", "slots", "maxmem", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "size", errp);
    const char *size;

    if (!h || !check_keys("-m", h, keys, errp)) {
        return false;
    }
    size = g_hash_table_lookup(h, "size");
    if (!size) {
        error_setg(errp, "-m: missing size");
        return false;
    }
    /* QEMU reads a bare -m number as MiB. */
    c->ram_size_given = true;
    if (!cmdline_parse_size(size, 1ULL << 20, &c->ram_size, errp)) {
        g_prefix_error(errp, "-m: ");
        return false;
    }
    if (c->ram_size < (2ULL << 20) || c->ram_size % MACHINE_PAGE_SIZE) {
        error_setg(errp, "-m: RAM size %s must be at least 2 MiB and a multiple of 4 KiB",
                   size);
        return false;
    }
    return true;
}

static bool parse_smp(MachineConfig *c, const char *arg, GError **errp)
{
    static const char *const keys[] = { "cpus", "sockets", "cores", "threads", "maxcpus", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "cpus", errp);
    const char *cpus;
    char *end;
    unsigned long n;

    if (!h || !check_keys("-smp", h, keys, errp)) {
        return false;
    }
    cpus = g_hash_table_lookup(h, "cpus");
    if (!cpus) {
        error_setg(errp, "-smp: missing the number of vCPUs");
        return false;
    }
    n = strtoul(cpus, &end, 10);
    if (*end || n < 1 || n > MACHINE_MAX_VCPUS) {
        error_setg(errp, "-smp: '%s' is not a vCPU count from 1 to %d", cpus,
                   MACHINE_MAX_VCPUS);
        return false;
    }
    c->smp = n;
    return true;
}

static const struct {
    const char *name;
    AccelKind kind;
} cmdline_accels[] = {
    { "kvm", ACCEL_KIND_KVM }, { "test", ACCEL_KIND_TEST }, { "tcg", ACCEL_KIND_TCG },
};

const char *cmdline_accel_name(AccelKind kind)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cmdline_accels); i++) {
        if (cmdline_accels[i].kind == kind) {
            return cmdline_accels[i].name;
        }
    }
    return "?";
}

/*
 * Append one accelerator to the list tried in order. tcg is known (QEMU
 * scripts name it, often as a fallback) and accepted here; machine_new()
 * reports it as unavailable and moves on to the next.
 */
static bool add_accel(MachineConfig *c, const char *opt, const char *name, GError **errp)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(cmdline_accels); i++) {
        if (!g_strcmp0(name, cmdline_accels[i].name)) {
            break;
        }
    }
    if (i == G_N_ELEMENTS(cmdline_accels)) {
        error_setg(errp, "%s: invalid accelerator '%s' (frostvm knows kvm, test and tcg)",
                   opt, name ? name : "");
        return false;
    }
    if (c->nr_accels == MACHINE_MAX_ACCELS) {
        error_setg(errp, "%s: more than %d accelerators named", opt, MACHINE_MAX_ACCELS);
        return false;
    }
    c->accels[c->nr_accels++] = cmdline_accels[i].kind;
    return true;
}

/* -accel NAME (repeatable; each one is tried in the order given, as in QEMU). */
static bool parse_accel(MachineConfig *c, const char *arg, GError **errp)
{
    static const char *const keys[] = { "accel", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "accel", errp);

    if (!h || !check_keys("-accel", h, keys, errp)) {
        return false;
    }
    if (c->accel_from_machine) {
        error_setg(errp, "The -accel and \"-machine accel=\" options are incompatible");
        return false;
    }
    return add_accel(c, "-accel", g_hash_table_lookup(h, "accel"), errp);
}

/* -machine accel=a:b:c, QEMU's older spelling of a list of -accel options. */
static bool parse_machine_accel(MachineConfig *c, const char *list, GError **errp)
{
    g_auto(GStrv) names = g_strsplit(list, ":", -1);

    if (c->nr_accels && !c->accel_from_machine) {
        error_setg(errp, "The -accel and \"-machine accel=\" options are incompatible");
        return false;
    }
    c->nr_accels = 0;
    c->accel_from_machine = true;
    for (char **p = names; *p; p++) {
        if (!add_accel(c, "-machine accel", *p, errp)) {
            return false;
        }
    }
    return true;
}

static bool parse_machine(MachineConfig *c, const char *arg, GError **errp)
{
    static const char *const keys[] = { "type", "accel", "memory-backend", "thp", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "type", errp);
    const char *v;

    if (!h || !check_keys("-machine", h, keys, errp)) {
        return false;
    }
    v = g_hash_table_lookup(h, "type");
    if (v && strcmp(v, "pc") && strcmp(v, "microvm") && strcmp(v, "q35") &&
        strcmp(v, "none")) {
        error_setg(errp, "-machine: machine type '%s' is not supported (frostvm "
                   "emulates a minimal PC; use pc)", v);
        return false;
    }
    if ((v = g_hash_table_lookup(h, "accel")) && !parse_machine_accel(c, v, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "memory-backend"))) {
        g_free(c->memory_backend_id);
        c->memory_backend_id = g_strdup(v);
    }
    if ((v = g_hash_table_lookup(h, "thp")) &&
        !cmdline_parse_bool("thp", v, &c->thp, errp)) {
        return false;
    }
    return true;
}

static bool parse_object(MachineConfig *c, const char *arg, GError **errp)
{
    static const char *const keys[] = { "qom-type", "id", "size", "share", "hugetlb",
                                        "hugetlbsize", "mem-path", "prealloc", "thp",
                                        "merge", "dump", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "qom-type", errp);
    MemoryBackendOptions *o;
    MemoryBackendKind kind;
    const char *v;

    if (!h) {
        return false;
    }
    v = g_hash_table_lookup(h, "qom-type");
    if (!memory_backend_kind_from_name(v, &kind)) {
        error_setg(errp, "-object: type '%s' is not supported (frostvm knows "
                   "memory-backend-ram, memory-backend-memfd, memory-backend-file)",
                   v ? v : "");
        return false;
    }
    if (!check_keys("-object", h, keys, errp)) {
        return false;
    }
    o = memory_backend_options_new(kind);
    g_ptr_array_add(c->objects, o);
    if (!(v = g_hash_table_lookup(h, "id"))) {
        error_setg(errp, "-object %s: parameter 'id' is missing",
                   memory_backend_kind_name(kind));
        return false;
    }
    o->id = g_strdup(v);
    if (!(v = g_hash_table_lookup(h, "size"))) {
        error_setg(errp, "-object %s: parameter 'size' is missing",
                   memory_backend_kind_name(kind));
        return false;
    }
    if (!cmdline_parse_size(v, 1, &o->size, errp)) {
        g_prefix_error(errp, "-object %s,id=%s: ", memory_backend_kind_name(kind), o->id);
        return false;
    }
    if ((v = g_hash_table_lookup(h, "share")) && !cmdline_parse_bool("share", v, &o->share, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "hugetlb")) &&
        !cmdline_parse_bool("hugetlb", v, &o->hugetlb, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "hugetlbsize")) &&
        !cmdline_parse_size(v, 1, &o->hugetlbsize, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "prealloc")) &&
        !cmdline_parse_bool("prealloc", v, &o->prealloc, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "thp")) && !cmdline_parse_bool("thp", v, &o->thp, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "mem-path"))) {
        o->mem_path = g_strdup(v);
    }
    if (kind == MEMORY_BACKEND_FILE && !o->mem_path) {
        error_setg(errp, "-object memory-backend-file,id=%s: parameter 'mem-path' is missing",
                   o->id);
        return false;
    }
    return true;
}

static void print_help(void)
{
    printf("usage: frostvm [options]\n"
           "\n"
           "Machine:\n"
           "  -m SIZE              guest RAM (a bare number is MiB; K/M/G suffixes)\n"
           "  -smp N               vCPUs (1 to %d)\n"
           "  -accel kvm|test      accelerator (test: host threads write RAM, no /dev/kvm)\n"
           "  -enable-kvm          same as -accel kvm\n"
           "  -machine pc[,memory-backend=ID][,thp=on|off]\n"
           "  -object memory-backend-{ram,memfd,file},id=ID,size=SIZE[,mem-path=P][,share=on]\n"
           "  -kernel FILE         Multiboot kernel  (-append ARGS, -initrd FILE)\n"
           "  -S                   do not start the vCPUs until 'cont'\n"
           "  -incoming URI|defer  wait for an incoming migration or snapshot\n"
           "  -global migration.restore-mode=lazy|eager|map  how -incoming restores a\n"
           "                       page-aligned image (default lazy)\n"
           "Monitors and I/O:\n"
           "  -qmp unix:PATH,server=on,wait=off | tcp:HOST:PORT,server=on,wait=off\n"
           "  -monitor stdio | unix:PATH,server=on,wait=off\n"
           "  -serial stdio|file:PATH|null   -nographic   -display none\n"
           "Process:\n"
           "  -name NAME  -pidfile FILE  -daemonize  -d (debug logs)  -version  -help\n",
           MACHINE_MAX_VCPUS);
}

typedef enum { ARG_NONE, ARG_ONE } ArgKind;

static const struct {
    const char *name;
    ArgKind arg;
} cmdline_options[] = {
    { "m", ARG_ONE }, { "smp", ARG_ONE }, { "accel", ARG_ONE }, { "enable-kvm", ARG_NONE },
    { "machine", ARG_ONE }, { "M", ARG_ONE }, { "object", ARG_ONE }, { "kernel", ARG_ONE },
    { "initrd", ARG_ONE }, { "append", ARG_ONE }, { "S", ARG_NONE }, { "incoming", ARG_ONE },
    { "qmp", ARG_ONE }, { "monitor", ARG_ONE }, { "serial", ARG_ONE },
    { "nographic", ARG_NONE }, { "display", ARG_ONE }, { "name", ARG_ONE },
    { "pidfile", ARG_ONE }, { "daemonize", ARG_NONE }, { "d", ARG_NONE },
    { "version", ARG_NONE }, { "help", ARG_NONE }, { "h", ARG_NONE }, { "device", ARG_ONE },
    { "nodefaults", ARG_NONE }, { "no-reboot", ARG_NONE }, { "cpu", ARG_ONE },
    { "global", ARG_ONE },
};

/*
 * -global DRIVER.PROPERTY=VALUE, as QEMU sets properties of its migration
 * object: frostvm knows migration.restore-mode (how -incoming restores a
 * page-aligned image), so the mode can be chosen without -incoming defer.
 */
static bool parse_global(MachineConfig *c, const char *arg, GError **errp)
{
    const char *value = strchr(arg, '=');

    if (!g_str_has_prefix(arg, "migration.restore-mode=")) {
        error_setg(errp, "-global %s: frostvm knows only migration.restore-mode=lazy|eager|map",
                   arg);
        return false;
    }
    value++;
    if (strcmp(value, "lazy") && strcmp(value, "eager") && strcmp(value, "map")) {
        error_setg(errp, "-global migration.restore-mode: '%s' is not lazy, eager or map",
                   value);
        return false;
    }
    g_free(c->restore_mode);
    c->restore_mode = g_strdup(value);
    return true;
}

/* -device: only the isa-debug-exit that frostvm always has, at QEMU's usual port. */
static bool parse_device(const char *arg, GError **errp)
{
    static const char *const keys[] = { "driver", "iobase", "iosize", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "driver", errp);
    const char *v;

    if (!h) {
        return false;
    }
    if (g_strcmp0(g_hash_table_lookup(h, "driver"), "isa-debug-exit")) {
        error_setg(errp, "-device: '%s' is not supported (frostvm has a built-in "
                   "isa-debug-exit at 0xf4 and a 16550A on COM1)",
                   (char *)g_hash_table_lookup(h, "driver"));
        return false;
    }
    if (!check_keys("-device isa-debug-exit", h, keys, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(h, "iobase")) && g_ascii_strtoull(v, NULL, 0) != 0xf4) {
        error_setg(errp, "-device isa-debug-exit: only iobase=0xf4 is supported");
        return false;
    }
    return true;
}

static bool apply_option(MachineConfig *c, const char *opt, const char *arg,
                         bool *exit_now, GError **errp)
{
    if (!strcmp(opt, "m")) {
        return parse_memory_size(c, arg, errp);
    } else if (!strcmp(opt, "smp")) {
        return parse_smp(c, arg, errp);
    } else if (!strcmp(opt, "accel")) {
        return parse_accel(c, arg, errp);
    } else if (!strcmp(opt, "enable-kvm")) {
        return parse_accel(c, "kvm", errp);
    } else if (!strcmp(opt, "machine") || !strcmp(opt, "M")) {
        return parse_machine(c, arg, errp);
    } else if (!strcmp(opt, "object")) {
        return parse_object(c, arg, errp);
    } else if (!strcmp(opt, "kernel")) {
        g_free(c->kernel);
        c->kernel = g_strdup(arg);
    } else if (!strcmp(opt, "initrd")) {
        g_free(c->initrd);
        c->initrd = g_strdup(arg);
    } else if (!strcmp(opt, "append")) {
        g_free(c->append);
        c->append = g_strdup(arg);
    } else if (!strcmp(opt, "S")) {
        c->start_paused = true;
    } else if (!strcmp(opt, "incoming")) {
        g_free(c->incoming);
        c->incoming = g_strdup(arg);
    } else if (!strcmp(opt, "global")) {
        return parse_global(c, arg, errp);
    } else if (!strcmp(opt, "qmp")) {
        g_ptr_array_add(c->qmp, g_strdup(arg));
    } else if (!strcmp(opt, "monitor")) {
        if (strcmp(arg, "none")) {
            g_ptr_array_add(c->monitors, g_strdup(arg));
        }
    } else if (!strcmp(opt, "serial")) {
        if (strcmp(arg, "stdio") && strcmp(arg, "null") && strcmp(arg, "none") &&
            !g_str_has_prefix(arg, "file:")) {
            error_setg(errp, "-serial: '%s' is not supported (use stdio, file:PATH, null "
                       "or none)", arg);
            return false;
        }
        g_free(c->serial);
        c->serial = g_strdup(arg);
    } else if (!strcmp(opt, "nographic")) {
        if (!c->serial) {
            c->serial = g_strdup("stdio");
        }
    } else if (!strcmp(opt, "display")) {
        if (strcmp(arg, "none")) {
            error_setg(errp, "-display: '%s' is not supported (frostvm has no display; "
                       "use -display none)", arg);
            return false;
        }
    } else if (!strcmp(opt, "name")) {
        g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "guest", errp);
        if (!h) {
            return false;
        }
        g_free(c->name);
        c->name = g_strdup(g_hash_table_lookup(h, "guest"));
    } else if (!strcmp(opt, "pidfile")) {
        g_free(c->pidfile);
        c->pidfile = g_strdup(arg);
    } else if (!strcmp(opt, "daemonize")) {
        c->daemonize = true;
    } else if (!strcmp(opt, "d")) {
        c->debug++;
    } else if (!strcmp(opt, "version")) {
        printf("frostvm version %s\n", FROSTVM_VERSION);
        *exit_now = true;
    } else if (!strcmp(opt, "help") || !strcmp(opt, "h")) {
        print_help();
        *exit_now = true;
    } else if (!strcmp(opt, "device")) {
        return parse_device(arg, errp);
    } else if (!strcmp(opt, "cpu")) {
        /* The vCPU model is KVM's supported CPUID; "host" and "max" mean just that. */
        if (strcmp(arg, "host") && strcmp(arg, "max") && strcmp(arg, "qemu64")) {
            error_setg(errp, "-cpu: model '%s' is not supported (frostvm exposes "
                       "KVM's supported CPUID; use max)", arg);
            return false;
        }
    }
    /* -nodefaults and -no-reboot need nothing: frostvm has no defaults to drop. */
    return true;
}

MachineConfig *cmdline_parse(int argc, char **argv, bool *exit_now, GError **errp)
{
    MachineConfig *c = g_new0(MachineConfig, 1);
    bool nographic = false;

    *exit_now = false;
    c->ram_size = 128ULL << 20;
    c->smp = 1;
    c->thp = true;
    c->qmp = g_ptr_array_new_with_free_func(g_free);
    c->monitors = g_ptr_array_new_with_free_func(g_free);
    c->objects = g_ptr_array_new_with_free_func((GDestroyNotify)memory_backend_options_free);

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *name;
        size_t k;

        if (a[0] != '-' || !a[1]) {
            error_setg(errp, "'%s': expected an option (frostvm takes no positional "
                       "arguments; use -kernel FILE)", a);
            goto fail;
        }
        name = a + 1 + (a[1] == '-');
        for (k = 0; k < G_N_ELEMENTS(cmdline_options); k++) {
            if (!strcmp(cmdline_options[k].name, name)) {
                break;
            }
        }
        if (k == G_N_ELEMENTS(cmdline_options)) {
            error_setg(errp, "%s: invalid option", a);
            goto fail;
        }
        if (cmdline_options[k].arg == ARG_ONE && i + 1 >= argc) {
            error_setg(errp, "%s: requires an argument", a);
            goto fail;
        }
        nographic |= !strcmp(name, "nographic");
        if (!apply_option(c, name, cmdline_options[k].arg == ARG_ONE ? argv[++i] : NULL,
                          exit_now, errp)) {
            goto fail;
        }
        if (*exit_now) {
            return c;
        }
    }
    /* As QEMU: a daemon has no terminal, so stdio devices would silently go nowhere. */
    if (c->daemonize) {
        if (nographic) {
            error_setg(errp, "-nographic cannot be used with -daemonize");
            goto fail;
        }
        if (!g_strcmp0(c->serial, "stdio")) {
            error_setg(errp, "-serial stdio cannot be used with -daemonize");
            goto fail;
        }
        for (unsigned i = 0; i < c->monitors->len; i++) {
            if (!strcmp(g_ptr_array_index(c->monitors, i), "stdio")) {
                error_setg(errp, "-monitor stdio cannot be used with -daemonize");
                goto fail;
            }
        }
        for (unsigned i = 0; i < c->qmp->len; i++) {
            if (g_str_has_prefix(g_ptr_array_index(c->qmp, i), "stdio")) {
                error_setg(errp, "-qmp stdio cannot be used with -daemonize");
                goto fail;
            }
        }
    }
    if (!c->serial) {
        c->serial = g_strdup(c->daemonize ? "null" : "stdio");
    }
    if (c->incoming && !strcmp(c->incoming, "")) {
        error_setg(errp, "-incoming: empty URI (use a URI or 'defer')");
        goto fail;
    }
    if (!cmdline_check(c, errp)) {
        goto fail;
    }
    return c;

fail:
    machine_config_free(c);
    return NULL;
}
