/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QEMU-style command line: the option table, help, and the walk over argv into MachineConfig. */
#include "system/cmdline-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config-host.h"
#include "migration/migration.h"
#include "system/chardev.h"
#include "system/fdset.h"
#include "system/memory-backend.h"
#include "util/error.h"

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
    g_free(c->restore_base);
    if (c->capabilities) {
        g_array_unref(c->capabilities);
    }
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
    if (c->chardevs) {
        g_ptr_array_unref(c->chardevs);
    }
    if (c->mons) {
        g_ptr_array_unref(c->mons);
    }
    if (c->secrets) {
        g_ptr_array_unref(c->secrets);
    }
    fdsets_free(c->fdsets);
    g_free(c->uuid);
    g_free(c->serial_chardev);
    g_free(c->serial_device_id);
    g_free(c);
}

static void print_help(void)
{
    printf("usage: frostvm [options]\n"
           "\n"
           "Machine:\n"
           "  -m SIZE | size=SIZE   guest RAM (a bare number is MiB; K/M/G suffixes)\n"
           "  -smp N[,sockets=S,cores=C,threads=T]   vCPUs (1 to %d)\n"
           "  -accel kvm|test|tcg   accelerator, repeatable: the first that works is used\n"
           "                        (test: host threads write RAM, no /dev/kvm; tcg: none)\n"
           "     [,x-vcpu-slice-us=N]  vCPU time slice asked of the scheduler (100; 0: kernel's)\n"
           "  -enable-kvm           same as -accel kvm\n"
           "  -machine pc|pc-i440fx-X.Y|none[,accel=a:b][,memory-backend=ID][,thp=on|off]\n"
           "  -object memory-backend-{ram,memfd,file},id=ID,size=SIZE[,mem-path=P][,share=on]\n"
           "  -object secret,id=ID,file=F|data=D[,format=raw|base64]\n"
           "  -kernel FILE          Multiboot kernel  (-append ARGS, -initrd FILE)\n"
           "  -S                    do not start the vCPUs until 'cont'\n"
           "  -incoming URI|defer   wait for an incoming migration or snapshot\n"
           "  -global migration.restore-mode=lazy|eager|map  how -incoming restores a\n"
           "                        page-aligned image (default lazy)\n"
           "  -global migration.restore-base=PATH  the base of an incremental image\n"
           "                        restored by -incoming, instead of the recorded one\n"
           "  -global migration.x-CAPABILITY=on|off  a migration capability, set before\n"
           "                        -incoming runs (as migrate_set_capability)\n"
           "Monitors and I/O:\n"
           "  -qmp unix:PATH,server=on,wait=off | tcp:HOST:PORT,server=on,wait=off\n"
           "  -monitor stdio | unix:PATH,server=on,wait=off\n"
           "  -chardev socket,id=ID,path=P|fd=N,server=on,wait=off | pty,id=ID |\n"
           "           file,id=ID,path=P|/dev/fdset/N[,append=on] | stdio,id=ID | null,id=ID\n"
           "  -mon chardev=ID[,mode=control]   -add-fd set=N,fd=M[,opaque=S]\n"
           "  -device isa-serial,chardev=ID    -serial stdio|file:PATH|null\n"
           "  -nographic   -display none   -nodefaults\n"
           "Accepted for managers (see docs/libvirt.md): -name guest=N[,debug-threads=on]\n"
           "  -uuid U  -no-user-config  -no-shutdown  -no-reboot  -no-acpi  -rtc  -boot\n"
           "  -overcommit mem-lock=off  -audiodev none  -msg timestamp=on  -sandbox off\n"
           "Process:\n"
           "  -pidfile FILE  -daemonize  -d (debug logs)  -version  -help\n",
           MACHINE_MAX_VCPUS);
}

typedef bool (*OptionParser)(MachineConfig *c, const char *arg, GError **errp);

/*
 * The options with key=value parameters, and the keys each accepts (the same
 * arrays their parsers check against). -sandbox is not here: QEMU lists it
 * only when it has a seccomp sandbox, and libvirt reads the listing as "pass
 * -sandbox on"; frostvm has none (see cmdline_parse_sandbox()).
 */
static const CmdlineOptionInfo cmdline_option_keys[] = {
    { "m", { cmdline_keys_memory } },
    { "smp", { cmdline_keys_smp } },
    { "accel", { cmdline_keys_accel } },
    { "machine", { cmdline_keys_machine } },
    { "object", { cmdline_keys_memory_backend, cmdline_keys_secret } },
    { "chardev", { cmdline_keys_chardev_socket, cmdline_keys_chardev_file,
                   cmdline_keys_chardev_plain } },
    { "mon", { cmdline_keys_mon } },
    { "add-fd", { cmdline_keys_add_fd } },
    { "device", { cmdline_keys_isa_serial, cmdline_keys_isa_debug_exit } },
    { "name", { cmdline_keys_name } },
    { "overcommit", { cmdline_keys_overcommit } },
    { "rtc", { cmdline_keys_rtc } },
    { "boot", { cmdline_keys_boot } },
    { "msg", { cmdline_keys_msg } },
    { "audiodev", { cmdline_keys_audiodev } },
};

const CmdlineOptionInfo *cmdline_option_infos(size_t *n)
{
    *n = G_N_ELEMENTS(cmdline_option_keys);
    return cmdline_option_keys;
}

/*
 * -global DRIVER.PROPERTY=VALUE, as QEMU sets properties of its migration
 * object: frostvm knows migration.restore-mode (how -incoming restores a
 * page-aligned image), so the mode can be chosen without -incoming defer.
 */
static bool cmdline_parse_global(MachineConfig *c, const char *arg, GError **errp)
{
    const char *value = strchr(arg, '=');
    MigrationCapability cap;

    if (g_str_has_prefix(arg, "migration.x-") && value) {
        /* QEMU's migration object has a property x-NAME for each capability NAME. */
        g_autofree char *name = g_strndup(arg + strlen("migration.x-"),
                                          value - arg - strlen("migration.x-"));
        MachineCapabilitySetting set;

        if (!migration_capability_from_name(name, &cap)) {
            error_setg(errp, "-global %s: there is no migration capability '%s'", arg, name);
            return false;
        }
        if (!cmdline_parse_bool(name, value + 1, &set.on, errp)) {
            g_prefix_error(errp, "-global migration.x-%s: ", name);
            return false;
        }
        set.cap = cap;
        if (!c->capabilities) {
            c->capabilities = g_array_new(false, false, sizeof(MachineCapabilitySetting));
        }
        g_array_append_val(c->capabilities, set);
        return true;
    }
    if (g_str_has_prefix(arg, "migration.restore-base=")) {
        g_free(c->restore_base);
        c->restore_base = g_strdup(value + 1);
        return true;
    }
    if (!g_str_has_prefix(arg, "migration.restore-mode=")) {
        error_setg(errp, "-global %s: frostvm knows only migration.restore-mode=lazy|eager|map, "
                   "migration.restore-base=PATH and migration.x-CAPABILITY=on|off", arg);
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

/* Every option: @parse takes its argument; the others are handled by apply_option(). */
static const struct {
    const char *name;
    bool has_arg;
    OptionParser parse;
} cmdline_options[] = {
    { "m", true, cmdline_parse_memory },
    { "smp", true, cmdline_parse_smp },
    { "accel", true, cmdline_parse_accel },
    { "enable-kvm", false, NULL },
    { "machine", true, cmdline_parse_machine },
    { "M", true, cmdline_parse_machine },
    { "object", true, cmdline_parse_object },
    { "kernel", true, NULL },
    { "initrd", true, NULL },
    { "append", true, NULL },
    { "S", false, NULL },
    { "incoming", true, NULL },
    { "global", true, cmdline_parse_global },
    { "qmp", true, NULL },
    { "monitor", true, NULL },
    { "serial", true, cmdline_parse_serial },
    { "chardev", true, cmdline_parse_chardev },
    { "mon", true, cmdline_parse_mon },
    { "add-fd", true, cmdline_parse_add_fd },
    { "device", true, cmdline_parse_device },
    { "nographic", false, NULL },
    { "display", true, cmdline_parse_display },
    { "name", true, cmdline_parse_name },
    { "uuid", true, cmdline_parse_uuid },
    { "pidfile", true, NULL },
    { "daemonize", false, NULL },
    { "d", false, NULL },
    { "version", false, NULL },
    { "help", false, NULL },
    { "h", false, NULL },
    { "nodefaults", false, NULL },
    { "no-user-config", false, NULL },
    { "no-reboot", false, NULL },
    { "no-shutdown", false, NULL },
    { "no-acpi", false, NULL },
    { "cpu", true, cmdline_parse_cpu },
    { "overcommit", true, cmdline_parse_overcommit },
    { "rtc", true, cmdline_parse_rtc },
    { "boot", true, cmdline_parse_boot },
    { "msg", true, cmdline_parse_msg },
    { "sandbox", true, cmdline_parse_sandbox },
    { "audiodev", true, cmdline_parse_audiodev },
};

static void replace_string(char **field, const char *value)
{
    g_free(*field);
    *field = g_strdup(value);
}

/* The options whose whole effect is to set a field. */
static bool apply_option(MachineConfig *c, const char *opt, const char *arg,
                         bool *exit_now, GError **errp)
{
    if (!strcmp(opt, "enable-kvm")) {
        return cmdline_parse_accel(c, "kvm", errp);
    } else if (!strcmp(opt, "kernel")) {
        replace_string(&c->kernel, arg);
    } else if (!strcmp(opt, "initrd")) {
        replace_string(&c->initrd, arg);
    } else if (!strcmp(opt, "append")) {
        replace_string(&c->append, arg);
    } else if (!strcmp(opt, "S")) {
        c->start_paused = true;
    } else if (!strcmp(opt, "incoming")) {
        replace_string(&c->incoming, arg);
    } else if (!strcmp(opt, "qmp")) {
        g_ptr_array_add(c->qmp, g_strdup(arg));
    } else if (!strcmp(opt, "monitor")) {
        if (strcmp(arg, "none")) {
            g_ptr_array_add(c->monitors, g_strdup(arg));
        }
    } else if (!strcmp(opt, "nographic")) {
        c->nographic = true;
    } else if (!strcmp(opt, "pidfile")) {
        replace_string(&c->pidfile, arg);
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
    } else if (!strcmp(opt, "nodefaults")) {
        c->nodefaults = true;
    } else if (!strcmp(opt, "no-shutdown")) {
        c->no_shutdown = true;
    }
    /*
     * -no-user-config: frostvm reads no configuration files. -no-reboot: the
     * guest cannot reset this machine, so a reboot never happens. -no-acpi:
     * the machine has no ACPI.
     */
    return true;
}

/* Defaults and checks once every option is in. */
static bool cmdline_finish(MachineConfig *c, GError **errp)
{
    /* As QEMU: a daemon has no terminal, so stdio devices would silently go nowhere. */
    if (c->daemonize) {
        /* As QEMU, only when -nographic would put a default device on stdio. */
        if (c->nographic && !c->nodefaults && !c->serial && !c->serial_chardev) {
            error_setg(errp, "-nographic cannot be used with -daemonize");
            return false;
        }
        if (!g_strcmp0(c->serial, "stdio")) {
            error_setg(errp, "-serial stdio cannot be used with -daemonize");
            return false;
        }
        for (unsigned i = 0; i < c->monitors->len; i++) {
            if (!strcmp(g_ptr_array_index(c->monitors, i), "stdio")) {
                error_setg(errp, "-monitor stdio cannot be used with -daemonize");
                return false;
            }
        }
        for (unsigned i = 0; i < c->qmp->len; i++) {
            if (g_str_has_prefix(g_ptr_array_index(c->qmp, i), "stdio")) {
                error_setg(errp, "-qmp stdio cannot be used with -daemonize");
                return false;
            }
        }
    }
    if (!cmdline_check_chardevs(c, errp)) {
        return false;
    }
    /* COM1 on stdio is frostvm's default, as QEMU's; -nodefaults drops it. */
    if (c->nographic && !c->nodefaults && !c->serial && !c->serial_chardev) {
        c->serial = g_strdup("stdio");
    }
    if (!c->serial && !c->serial_chardev) {
        c->serial = g_strdup(c->daemonize || c->nodefaults ? "null" : "stdio");
    }
    if (c->incoming && !strcmp(c->incoming, "")) {
        error_setg(errp, "-incoming: empty URI (use a URI or 'defer')");
        return false;
    }
    return cmdline_check(c, errp);
}

MachineConfig *cmdline_parse(int argc, char **argv, bool *exit_now, GError **errp)
{
    MachineConfig *c = g_new0(MachineConfig, 1);

    *exit_now = false;
    c->ram_size = 128ULL << 20;
    c->smp = 1;
    c->thp = true;
    c->dump_guest_core = true;
    c->qmp = g_ptr_array_new_with_free_func(g_free);
    c->monitors = g_ptr_array_new_with_free_func(g_free);
    c->objects = g_ptr_array_new_with_free_func((GDestroyNotify)memory_backend_options_free);
    c->chardevs = g_ptr_array_new_with_free_func(chardev_options_free);
    c->mons = g_ptr_array_new_with_free_func(mon_options_free);
    c->secrets = g_ptr_array_new_with_free_func(secret_object_free);
    c->fdsets = g_array_new(FALSE, FALSE, sizeof(FdsetEntry));

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *name;
        const char *arg = NULL;
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
        if (cmdline_options[k].has_arg) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", a);
                goto fail;
            }
            arg = argv[++i];
        }
        if (cmdline_options[k].parse ? !cmdline_options[k].parse(c, arg, errp)
                                     : !apply_option(c, name, arg, exit_now, errp)) {
            goto fail;
        }
        if (*exit_now) {
            return c;
        }
    }
    if (!c->sockets) {
        c->sockets = c->maxcpus = c->smp;
        c->cores = c->threads = 1;
    }
    if (!cmdline_finish(c, errp)) {
        goto fail;
    }
    return c;

fail:
    machine_config_free(c);
    return NULL;
}
