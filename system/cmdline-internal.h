/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the command line's files share: option lists and one parser per group of options. */
#ifndef SYSTEM_CMDLINE_INTERNAL_H
#define SYSTEM_CMDLINE_INTERNAL_H

#include "system/cmdline.h"

/*
 * An option's argument as a table of keys to values: QEMU's "a,k=v" list, or,
 * when it starts with '{', a JSON object of scalars (what libvirt passes to
 * -device, -object and -audiodev). Booleans become "on"/"off", numbers their
 * decimal text. @opt names the option in errors.
 */
GHashTable *cmdline_parse_opts(const char *opt, const char *arg, const char *implied_key,
                               GError **errp);

/* Reject keys of @h not in @allowed (NULL-terminated), naming the option. */
bool cmdline_check_keys(const char *opt, GHashTable *h, const char *const *allowed,
                        GError **errp);

/* The keys each option accepts (NULL-terminated); query-command-line-options lists them. */
extern const char *const cmdline_keys_memory[],
    *const cmdline_keys_smp[],
    *const cmdline_keys_accel[],
    *const cmdline_keys_machine[],
    *const cmdline_keys_secret[],
    *const cmdline_keys_memory_backend[],
    *const cmdline_keys_chardev_socket[],
    *const cmdline_keys_chardev_file[],
    *const cmdline_keys_chardev_plain[],
    *const cmdline_keys_mon[],
    *const cmdline_keys_add_fd[],
    *const cmdline_keys_isa_serial[],
    *const cmdline_keys_isa_debug_exit[],
    *const cmdline_keys_name[],
    *const cmdline_keys_overcommit[],
    *const cmdline_keys_rtc[],
    *const cmdline_keys_boot[],
    *const cmdline_keys_msg[],
    *const cmdline_keys_audiodev[];

/* Machine and guest resources (cmdline-machine.c). */
bool cmdline_parse_memory(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_smp(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_accel(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_machine(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_object(MachineConfig *c, const char *arg, GError **errp);
void secret_object_free(gpointer secret);

/* Character devices, monitors, descriptor sets, devices (cmdline-chardev.c). */
bool cmdline_parse_chardev(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_mon(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_add_fd(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_serial(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_device(MachineConfig *c, const char *arg, GError **errp);
/* Cross-checks: -mon names a socket or stdio chardev, isa-serial a device backend. */
bool cmdline_check_chardevs(MachineConfig *c, GError **errp);

/* Options QEMU has for managers, and what frostvm does with them (cmdline-qemu-compat.c). */
bool cmdline_parse_name(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_uuid(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_overcommit(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_rtc(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_boot(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_msg(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_sandbox(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_audiodev(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_display(MachineConfig *c, const char *arg, GError **errp);
bool cmdline_parse_cpu(MachineConfig *c, const char *arg, GError **errp);

#endif
