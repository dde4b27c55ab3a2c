/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Options QEMU offers managers such as libvirt, and what each means on
 * frostvm's machine: applied where frostvm has the thing, accepted where the
 * value asks for what frostvm's machine already is, refused otherwise.
 */
#include "system/cmdline-internal.h"

#include <string.h>

#include "util/error.h"

const char *const cmdline_keys_name[] = {
    "guest", "debug-threads", "process", NULL
};
const char *const cmdline_keys_overcommit[] = {
    "mem-lock", "cpu-pm", NULL
};
const char *const cmdline_keys_rtc[] = {
    "base", "clock", "driftfix", NULL
};
const char *const cmdline_keys_boot[] = {
    "order", "once", "menu", "strict", "reboot-timeout", "splash-time", NULL
};
const char *const cmdline_keys_msg[] = {
    "timestamp", "guest-name", NULL
};
const char *const cmdline_keys_audiodev[] = {
    "driver", "id", NULL
};

/* -name NAME or -name guest=NAME,debug-threads=on|off[,process=P]. */
bool cmdline_parse_name(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "guest", errp);
    const char *v;

    if (!h || !cmdline_check_keys("-name", h, cmdline_keys_name, errp)) {
        return false;
    }
    g_free(c->name);
    c->name = g_strdup(g_hash_table_lookup(h, "guest"));
    return !(v = g_hash_table_lookup(h, "debug-threads")) ||
           cmdline_parse_bool("debug-threads", v, &c->debug_threads, errp);
}

bool cmdline_parse_uuid(MachineConfig *c, const char *arg, GError **errp)
{
    if (!g_uuid_string_is_valid(arg)) {
        error_setg(errp, "-uuid: '%s' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                   arg);
        return false;
    }
    g_free(c->uuid);
    c->uuid = g_ascii_strdown(arg, -1);
    return true;
}

/* A key whose value must be one of @allowed (what frostvm can honour). */
static bool require_value(const char *opt, GHashTable *h, const char *key,
                          const char *const *allowed, const char *why, GError **errp)
{
    const char *v = g_hash_table_lookup(h, key);

    if (v && !g_strv_contains(allowed, v)) {
        error_setg(errp, "%s %s=%s: %s", opt, key, v, why);
        return false;
    }
    return true;
}

/*
 * -overcommit mem-lock=off,cpu-pm=off: what frostvm does anyway. Locking guest
 * RAM (mem-lock=on) is refused: write-protecting and releasing locked pages
 * would fight the snapshot's page tracking, and frostvm never needed it.
 */
bool cmdline_parse_overcommit(MachineConfig *c, const char *arg, GError **errp)
{
    static const char *const off[] = { "off", "false", "no", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, NULL, errp);

    return h && cmdline_check_keys("-overcommit", h, cmdline_keys_overcommit, errp) &&
           require_value("-overcommit", h, "mem-lock", off,
                         "frostvm does not lock guest memory", errp) &&
           require_value("-overcommit", h, "cpu-pm", off,
                         "frostvm does not pass CPU power management to the guest",
                         errp);
}

/*
 * -rtc base=utc|localtime,clock=host|rt|vm,driftfix=none|slew. frostvm's PC has
 * no CMOS clock for the guest to read, so there is nothing to set; the values
 * are checked so a typo still fails.
 */
bool cmdline_parse_rtc(MachineConfig *c, const char *arg, GError **errp)
{
    static const char *const clocks[] = { "host", "rt", "vm", NULL };
    static const char *const driftfix[] = { "none", "slew", NULL };
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, NULL, errp);
    const char *base;

    if (!h || !cmdline_check_keys("-rtc", h, cmdline_keys_rtc, errp)) {
        return false;
    }
    base = g_hash_table_lookup(h, "base");
    if (base && strcmp(base, "utc") && strcmp(base, "localtime") &&
        !g_ascii_isdigit(base[0])) {
        error_setg(errp, "-rtc base=%s: expected utc, localtime or a date", base);
        return false;
    }
    return require_value("-rtc", h, "clock", clocks, "expected host, rt or vm", errp) &&
           require_value("-rtc", h, "driftfix", driftfix, "expected none or slew", errp);
}

/*
 * -boot strict=on,order=...,menu=off: frostvm boots -kernel (or an incoming
 * stream), never a disk or the network, so the boot order has nothing to order.
 */
bool cmdline_parse_boot(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "order", errp);
    const char *v;
    bool b;

    if (!h || !cmdline_check_keys("-boot", h, cmdline_keys_boot, errp)) {
        return false;
    }
    return (!(v = g_hash_table_lookup(h, "strict")) || cmdline_parse_bool("strict", v, &b, errp)) &&
           (!(v = g_hash_table_lookup(h, "menu")) || cmdline_parse_bool("menu", v, &b, errp));
}

/* -msg timestamp=on: main prefixes its error messages with the time, as QEMU does. */
bool cmdline_parse_msg(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, NULL, errp);
    const char *v;
    bool b;

    if (!h || !cmdline_check_keys("-msg", h, cmdline_keys_msg, errp)) {
        return false;
    }
    return (!(v = g_hash_table_lookup(h, "timestamp")) ||
            cmdline_parse_bool("timestamp", v, &c->msg_timestamp, errp)) &&
           (!(v = g_hash_table_lookup(h, "guest-name")) ||
            cmdline_parse_bool("guest-name", v, &b, errp));
}

/*
 * -sandbox: frostvm has no seccomp filter, so "on" is refused rather than
 * pretended; "off" asks for what frostvm is. query-command-line-options does
 * not list sandbox, so libvirt never passes it (and exec: migrations work
 * under libvirt without changing qemu.conf).
 */
bool cmdline_parse_sandbox(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "enable", errp);
    const char *v;
    bool on;

    if (!h) {
        return false;
    }
    v = g_hash_table_lookup(h, "enable");
    if (!v || !cmdline_parse_bool("-sandbox", v, &on, errp)) {
        if (!v) {
            error_setg(errp, "-sandbox: expected on or off");
        }
        return false;
    }
    if (on) {
        error_setg(errp, "-sandbox on: frostvm has no seccomp sandbox; it is refused "
                   "rather than silently not applied");
        return false;
    }
    if (g_hash_table_size(h) > 1) {
        error_setg(errp, "-sandbox off: takes no other parameters");
        return false;
    }
    return true;
}

/* -audiodev none: frostvm has no sound device, so only the null backend makes sense. */
bool cmdline_parse_audiodev(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_opts("-audiodev", arg, "driver", errp);

    if (!h || !cmdline_check_keys("-audiodev", h, cmdline_keys_audiodev, errp)) {
        return false;
    }
    if (!g_hash_table_contains(h, "id")) {
        error_setg(errp, "-audiodev: parameter 'id' is missing");
        return false;
    }
    if (g_strcmp0(g_hash_table_lookup(h, "driver"), "none")) {
        error_setg(errp, "-audiodev: driver '%s' is not supported (frostvm has no sound "
                   "device; use none)", (char *)g_hash_table_lookup(h, "driver"));
        return false;
    }
    return true;
}

bool cmdline_parse_display(MachineConfig *c, const char *arg, GError **errp)
{
    if (strcmp(arg, "none")) {
        error_setg(errp, "-display: '%s' is not supported (frostvm has no display; "
                   "use -display none)", arg);
        return false;
    }
    return true;
}

bool cmdline_parse_cpu(MachineConfig *c, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) h = cmdline_parse_keyval(arg, "model", errp);
    const char *model;

    if (!h) {
        return false;
    }
    /* The vCPU model is KVM's supported CPUID; "host" and "max" mean just that. */
    model = g_hash_table_lookup(h, "model");
    if (strcmp(model, "host") && strcmp(model, "max") && strcmp(model, "qemu64")) {
        error_setg(errp, "-cpu: model '%s' is not supported (frostvm exposes "
                   "KVM's supported CPUID; use max)", model);
        return false;
    }
    if (g_hash_table_size(h) > 2 ||
        (g_hash_table_size(h) == 2 && !g_hash_table_contains(h, "migratable"))) {
        error_setg(errp, "-cpu %s: frostvm takes no CPU features", arg);
        return false;
    }
    return true;
}
