/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The options that shape the guest: -m, -smp, -accel, -machine and -object. */
#include "system/cmdline-internal.h"

#include <string.h>

#include "system/memory-backend.h"
#include "util/error.h"

const char *const cmdline_keys_memory[] = {
    "size", "slots", "maxmem", NULL
};
const char *const cmdline_keys_smp[] = {
    "cpus", "sockets", "dies", "cores", "threads", "maxcpus", NULL
};
const char *const cmdline_keys_accel[] = {
    "accel", "x-vcpu-slice-us", NULL
};
const char *const cmdline_keys_machine[] = {
    "type", "accel", "memory-backend", "thp", "usb", "dump-guest-core", "acpi",
    "vmport", NULL
};
const char *const cmdline_keys_secret[] = {
    "qom-type", "id", "format", "data", "file", NULL
};
const char *const cmdline_keys_memory_backend[] = {
    "qom-type", "id", "size", "share", "hugetlb", "hugetlbsize", "mem-path", "prealloc",
    "thp", "merge", "dump", NULL
};

bool cmdline_parse_memory(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "size", errp);
    const char *size;

    if (!h || !cmdline_check_keys("-m", h, cmdline_keys_memory, errp)) {
        return false;
    }
    size = g_hash_table_lookup(h, "size");
    if (!size) {
        error_setg(errp, "-m: missing size");
        return false;
    }
    if (g_hash_table_contains(h, "maxmem") || g_hash_table_contains(h, "slots")) {
        error_setg(errp, "-m: frostvm has no memory hotplug (maxmem=, slots=)");
        return false;
    }
    /* QEMU reads a bare -m number as MiB ("-m 256"); libvirt 9 writes "size=262144k". */
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

static bool smp_number(GHashTable *h, const char *key, unsigned *out, GError **errp)
{
    const char *v = g_hash_table_lookup(h, key);
    char *end;
    unsigned long n;

    if (!v) {
        return true;
    }
    n = strtoul(v, &end, 10);
    if (!*v || *end || n < 1 || n > 1024) {
        error_setg(errp, "-smp: %s '%s' is not a count from 1", key, v);
        return false;
    }
    *out = n;
    return true;
}

/*
 * -smp N[,sockets=S,cores=C,threads=T,maxcpus=M]. The topology is what vCPU
 * properties report; S*C*T must equal maxcpus, as QEMU requires, and frostvm
 * has no hotplug, so maxcpus must equal N.
 */
bool cmdline_parse_smp(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "cpus", errp);
    unsigned cpus = 0, sockets = 0, dies = 1, cores = 0, threads = 0, maxcpus = 0;

    if (!h || !cmdline_check_keys("-smp", h, cmdline_keys_smp, errp) ||
        !smp_number(h, "cpus", &cpus, errp) || !smp_number(h, "sockets", &sockets, errp) ||
        !smp_number(h, "dies", &dies, errp) || !smp_number(h, "cores", &cores, errp) ||
        !smp_number(h, "threads", &threads, errp) ||
        !smp_number(h, "maxcpus", &maxcpus, errp)) {
        return false;
    }
    if (!cpus) {
        cpus = maxcpus ? maxcpus : MAX(sockets, 1) * dies * MAX(cores, 1) * MAX(threads, 1);
    }
    if (cpus > MACHINE_MAX_VCPUS) {
        error_setg(errp, "-smp: %u vCPUs requested; frostvm supports 1 to %d", cpus,
                   MACHINE_MAX_VCPUS);
        return false;
    }
    maxcpus = maxcpus ? maxcpus : cpus;
    if (maxcpus != cpus) {
        error_setg(errp, "-smp: maxcpus=%u differs from cpus=%u, but frostvm has no "
                   "vCPU hotplug", maxcpus, cpus);
        return false;
    }
    threads = threads ? threads : 1;
    if (!cores) {
        cores = sockets ? maxcpus / (sockets * dies * threads) : 1;
    }
    if (!sockets) {
        sockets = maxcpus / (dies * cores * threads);
    }
    if (sockets * dies * cores * threads != maxcpus) {
        error_setg(errp, "-smp: sockets (%u) * dies (%u) * cores (%u) * threads (%u) "
                   "!= maxcpus (%u)", sockets, dies, cores, threads, maxcpus);
        return false;
    }
    c->smp = cpus;
    c->sockets = sockets * dies;
    c->cores = cores;
    c->threads = threads;
    c->maxcpus = maxcpus;
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
 * scripts and libvirt's type='qemu' domains name it) and accepted here;
 * machine_new() reports it as unavailable and moves on to the next.
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

/*
 * x-vcpu-slice-us=N: the time slice vCPU threads ask the scheduler for
 * (accel/vcpu-thread.c; 100 by default), 0 to keep the kernel's. The kernel
 * takes 100 us to 100 ms. Applies to every accelerator named.
 */
static bool parse_vcpu_slice(MachineConfig *c, const char *v, GError **errp)
{
    guint64 us;

    if (!g_ascii_string_to_unsigned(v, 10, 0, 100000, &us, NULL) || (us && us < 100)) {
        error_setg(errp, "-accel: x-vcpu-slice-us=%s: expected 0 (the kernel's slice) or "
                   "100 to 100000 microseconds", v);
        return false;
    }
    c->vcpu_slice_set = true;
    c->vcpu_slice_us = (unsigned)us;
    return true;
}

/* -accel NAME (repeatable; each one is tried in the order given, as in QEMU). */
bool cmdline_parse_accel(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "accel", errp);

    if (!h || !cmdline_check_keys("-accel", h, cmdline_keys_accel, errp)) {
        return false;
    }
    if (c->accel_from_machine) {
        error_setg(errp, "The -accel and \"-machine accel=\" options are incompatible");
        return false;
    }
    const char *slice = g_hash_table_lookup(h, "x-vcpu-slice-us");
    if (slice && !parse_vcpu_slice(c, slice, errp)) {
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

/*
 * frostvm has one machine, a minimal PC. It answers to QEMU's names for the
 * PC (pc, and the versioned pc-i440fx-X.Y that libvirt writes), and "none",
 * the empty machine managers start to ask what an emulator can do.
 */
static bool machine_type_known(const char *type)
{
    return !strcmp(type, "pc") || g_str_has_prefix(type, "pc-i440fx-") ||
           !strcmp(type, "q35") || !strcmp(type, "microvm") || !strcmp(type, "none");
}

/* A property frostvm's machine lacks may only be asked to stay off. */
static bool machine_require_off(GHashTable *h, const char *key, const char *why,
                                GError **errp)
{
    const char *v = g_hash_table_lookup(h, key);
    bool on;

    if (!v) {
        return true;
    }
    if (!cmdline_parse_bool(key, v, &on, errp)) {
        g_prefix_error(errp, "-machine: ");
        return false;
    }
    if (on) {
        error_setg(errp, "-machine %s=on: %s", key, why);
        return false;
    }
    return true;
}

bool cmdline_parse_machine(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "type", errp);
    const char *v;

    if (!h || !cmdline_check_keys("-machine", h, cmdline_keys_machine, errp)) {
        return false;
    }
    v = g_hash_table_lookup(h, "type");
    if (v && !machine_type_known(v)) {
        error_setg(errp, "-machine: machine type '%s' is not supported (frostvm "
                   "emulates a minimal PC; use pc)", v);
        return false;
    }
    if (v) {
        c->machine_none = !strcmp(v, "none");
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
    if ((v = g_hash_table_lookup(h, "dump-guest-core")) &&
        !cmdline_parse_bool("dump-guest-core", v, &c->dump_guest_core, errp)) {
        return false;
    }
    return machine_require_off(h, "usb", "frostvm's PC has no USB controller", errp) &&
           machine_require_off(h, "acpi", "frostvm's PC has no ACPI", errp) &&
           machine_require_off(h, "vmport", "frostvm's PC has no VMware I/O port", errp);
}

void secret_object_free(gpointer p)
{
    SecretObject *s = p;

    g_free(s->id);
    g_free(s->format);
    if (s->data) {
        g_bytes_unref(s->data);
    }
    g_free(s);
}

/*
 * -object secret,id=ID,format=raw|base64,data=D|file=F. Nothing in frostvm
 * consumes a secret yet (libvirt's master key encrypts other secrets, and
 * frostvm takes none); it is read now, so a bad file fails at start as in
 * QEMU, and kept.
 */
static bool parse_secret(MachineConfig *c, GHashTable *h, GError **errp)
{
    g_autoptr(GError) err = NULL;
    SecretObject *s;
    const char *v;
    char *text = NULL;
    gsize len = 0;

    if (!cmdline_check_keys("-object secret", h, cmdline_keys_secret, errp)) {
        return false;
    }
    s = g_new0(SecretObject, 1);
    g_ptr_array_add(c->secrets, s);
    s->id = g_strdup(g_hash_table_lookup(h, "id"));
    s->format = g_strdup(g_hash_table_lookup(h, "format"));
    if (!s->id) {
        error_setg(errp, "-object secret: parameter 'id' is missing");
        return false;
    }
    if (!s->format) {
        s->format = g_strdup("raw");
    }
    if (strcmp(s->format, "raw") && strcmp(s->format, "base64")) {
        error_setg(errp, "-object secret,id=%s: format '%s' is not raw or base64", s->id,
                   s->format);
        return false;
    }
    if (g_hash_table_contains(h, "data") == g_hash_table_contains(h, "file")) {
        error_setg(errp, "-object secret,id=%s: give exactly one of data= and file=",
                   s->id);
        return false;
    }
    if ((v = g_hash_table_lookup(h, "file"))) {
        if (!g_file_get_contents(v, &text, &len, &err)) {
            error_setg(errp, "-object secret,id=%s: %s", s->id, err->message);
            return false;
        }
    } else {
        text = g_strdup(g_hash_table_lookup(h, "data"));
        len = strlen(text);
    }
    if (!strcmp(s->format, "base64")) {
        g_autofree char *encoded = text;

        text = (char *)g_base64_decode(encoded, &len);
    }
    s->data = g_bytes_new_take(text, len);
    return true;
}

bool cmdline_parse_object(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_opts("-object", arg, "qom-type", errp);
    MemoryBackendOptions *o;
    MemoryBackendKind kind;
    bool dump = true;
    const char *v;

    if (!h) {
        return false;
    }
    v = g_hash_table_lookup(h, "qom-type");
    if (!g_strcmp0(v, "secret")) {
        return parse_secret(c, h, errp);
    }
    if (!memory_backend_kind_from_name(v, &kind)) {
        error_setg(errp, "-object: type '%s' is not supported (frostvm knows "
                   "memory-backend-ram, memory-backend-memfd, memory-backend-file "
                   "and secret)", v ? v : "");
        return false;
    }
    if (!cmdline_check_keys("-object", h, cmdline_keys_memory_backend, errp)) {
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
    if ((v = g_hash_table_lookup(h, "dump")) && !cmdline_parse_bool("dump", v, &dump, errp)) {
        return false;
    }
    o->dontdump = !dump;
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
