/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the options managers such as libvirt pass: chardevs, fdsets, compat options, errors. */
#include "system/cmdline.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "system/chardev.h"
#include "system/fdset.h"

static MachineConfig *parse(const char *line, GError **errp)
{
    g_auto(GStrv) argv = NULL;
    int argc;
    bool exit_now;

    g_assert_true(g_shell_parse_argv(line, &argc, &argv, NULL));
    return cmdline_parse(argc, argv, &exit_now, errp);
}

/* The command line libvirt 9.0 wrote for a type='qemu' domain (domain log, this machine). */
static void test_libvirt_domain_line(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *secret = NULL;
    g_autofree char *line = NULL;
    int sock[2];
    MachineConfig *c;
    ChardevOptions *mon;
    SecretObject *s;
    int fd = g_file_open_tmp("frostvm-secret-XXXXXX", &secret, NULL);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, "0123456789abcdef", 16), ==, 16);
    close(fd);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sock), ==, 0);
    line = g_strdup_printf(
        "-name guest=vm1,debug-threads=on -S -object secret,id=masterKey0,format=raw,file=%s "
        "-machine pc-i440fx-7.2,usb=off,dump-guest-core=off -accel tcg -m size=262144k "
        "-overcommit mem-lock=off -smp 1,sockets=1,cores=1,threads=1 "
        "-uuid FFA5ACB3-A0A4-4D9A-8652-87D6D0F6D1A2 -display none -no-user-config -nodefaults "
        "-chardev socket,id=charmonitor,fd=%d,server=on,wait=off "
        "-mon chardev=charmonitor,id=monitor,mode=control -rtc base=utc -no-shutdown -no-acpi "
        "-boot strict=on -kernel p.elf -append mem=64M -chardev pty,id=charserial0 "
        "-device '{\"driver\":\"isa-serial\",\"chardev\":\"charserial0\",\"id\":\"serial0\",\"index\":0}' "
        "-audiodev '{\"id\":\"audio1\",\"driver\":\"none\"}' -accel test -msg timestamp=on",
        secret, sock[0]);
    c = parse(line, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(c->name, ==, "vm1");
    g_assert_true(c->debug_threads && c->start_paused && c->no_shutdown && c->nodefaults);
    g_assert_true(c->msg_timestamp);
    g_assert_false(c->dump_guest_core);
    g_assert_cmpuint(c->ram_size, ==, 256ULL << 20);
    g_assert_cmpuint(c->nr_accels, ==, 2);
    g_assert_cmpint(c->accels[0], ==, ACCEL_KIND_TCG);
    g_assert_cmpint(c->accels[1], ==, ACCEL_KIND_TEST);
    g_assert_cmpstr(c->uuid, ==, "ffa5acb3-a0a4-4d9a-8652-87d6d0f6d1a2");
    g_assert_cmpuint(c->secrets->len, ==, 1);
    s = g_ptr_array_index(c->secrets, 0);
    g_assert_cmpuint(g_bytes_get_size(s->data), ==, 16);
    mon = chardev_options_find(c->chardevs, "charmonitor");
    g_assert_nonnull(mon);
    g_assert_cmpint(mon->kind, ==, CHARDEV_SOCKET);
    g_assert_cmpint(mon->fd, ==, sock[0]);
    g_assert_cmpuint(c->mons->len, ==, 1);
    g_assert_true(((MonOptions *)g_ptr_array_index(c->mons, 0))->control);
    g_assert_cmpstr(c->serial_chardev, ==, "charserial0");
    g_assert_cmpstr(c->serial_device_id, ==, "serial0");
    g_assert_null(c->serial);
    machine_config_free(c);
    close(sock[0]);
    close(sock[1]);
    unlink(secret);
}

/* libvirt's probe: -nographic with -daemonize is fine once -nodefaults leaves stdio unused. */
static void test_probe_line(void)
{
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-S -no-user-config -nodefaults -nographic "
                             "-machine none,accel=kvm:tcg "
                             "-qmp unix:/tmp/x/qmp.monitor,server=on,wait=off "
                             "-pidfile /tmp/x/qmp.pid -daemonize", &err);

    g_assert_no_error(err);
    g_assert_true(c->machine_none && c->daemonize);
    g_assert_cmpstr(c->serial, ==, "null");
    machine_config_free(c);
    g_assert_null(parse("-nographic -daemonize", &err));
    g_assert_nonnull(strstr(err->message, "-nographic cannot be used with -daemonize"));
}

/* -add-fd takes the descriptor; /dev/fdset/N opens a copy with a fitting access mode. */
static void test_fdset(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL;
    g_autofree char *line = NULL;
    g_autofree char *text = NULL;
    int fd = g_file_open_tmp("frostvm-fdset-XXXXXX", &path, NULL);
    MachineConfig *c;
    int out;

    line = g_strdup_printf("-add-fd set=3,fd=%d,opaque=serial0-source "
                           "-chardev file,id=s,path=/dev/fdset/3,append=on "
                           "-device isa-serial,chardev=s", fd);
    c = parse(line, &err);
    g_assert_no_error(err);
    /* The set owns it now: the number passed in is closed. */
    g_assert_cmpint(fcntl(fd, F_GETFD), <, 0);
    out = fdset_open(c->fdsets, "/dev/fdset/3", O_WRONLY, &err);
    g_assert_no_error(err);
    g_assert_cmpint(write(out, "hello\n", 6), ==, 6);
    close(out);
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, "hello\n");
    g_assert_cmpint(fdset_open(c->fdsets, "/dev/fdset/4", O_WRONLY, &err), ==, -1);
    g_assert_nonnull(strstr(err->message, "no descriptor in set 4"));
    machine_config_free(c);
    unlink(path);
}

static void test_smp_topology(void)
{
    g_autoptr(GError) err = NULL;
    MachineConfig *c = parse("-smp 4,sockets=2,cores=2,threads=1", &err);

    g_assert_no_error(err);
    g_assert_cmpuint(c->smp, ==, 4);
    g_assert_cmpuint(c->sockets, ==, 2);
    g_assert_cmpuint(c->cores, ==, 2);
    g_assert_cmpuint(c->threads, ==, 1);
    machine_config_free(c);
    c = parse("-smp sockets=1,cores=2,threads=2", &err);
    g_assert_no_error(err);
    g_assert_cmpuint(c->smp, ==, 4);
    machine_config_free(c);
}

/* Each refusal names the option and says why. */
static void test_refusals(void)
{
    static const struct {
        const char *line;
        const char *message;
    } cases[] = {
        { "-sandbox on,obsolete=deny,spawn=deny", "no seccomp sandbox" },
        { "-overcommit mem-lock=on", "does not lock guest memory" },
        { "-machine pc,usb=on", "no USB controller" },
        { "-smp 2,sockets=3,cores=1,threads=1", "!= maxcpus" },
        { "-smp 2,maxcpus=4", "no vCPU hotplug" },
        { "-chardev socket,id=m,path=/tmp/m.sock,server=on", "without waiting" },
        { "-chardev socket,id=m,server=on,wait=off", "exactly one of path= and fd=" },
        { "-chardev spiceport,id=x", "backend 'spiceport' is not supported" },
        { "-chardev pty,id=a -chardev pty,id=a", "duplicate id 'a'" },
        { "-mon chardev=nothere,mode=control", "chardev 'nothere' not found" },
        { "-chardev pty,id=p -mon chardev=p,mode=control", "needs a socket or stdio" },
        { "-device isa-serial,chardev=nothere", "chardev 'nothere' not found" },
        { "-device isa-serial,chardev=c,index=1 -chardev null,id=c", "one serial port" },
        { "-serial stdio -chardev null,id=c -device isa-serial,chardev=c", "already given" },
        { "-device '{\"driver\":\"virtio-net-pci\"}'", "'virtio-net-pci' is not supported" },
        { "-device '{\"driver\":\"isa-serial\",\"chardev\":{\"x\":1}}'", "no nested" },
        { "-audiodev '{\"id\":\"a\",\"driver\":\"pa\"}'", "no sound device" },
        { "-object secret,id=s,format=raw", "exactly one of data= and file=" },
        { "-object secret,id=s,file=/nonexistent/key", "-object secret,id=s" },
        { "-add-fd set=0,fd=1", "standard input, output or error" },
        { "-add-fd set=0,fd=987", "not an open file descriptor" },
        { "-uuid not-a-uuid", "is not a UUID" },
        { "-rtc base=mars", "expected utc, localtime or a date" },
        { "-machine none -kernel p.elf", "-machine none has no guest" },
        { "-no-such-option", "invalid option" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;

        g_assert_null(parse(cases[i].line, &err));
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].message)) {
            g_error("'%s': got '%s', expected it to say '%s'", cases[i].line, err->message,
                    cases[i].message);
        }
    }
}

/* Options that ask for what frostvm's machine already is are accepted. */
static void test_accepted(void)
{
    static const char *const lines[] = {
        "-sandbox off", "-overcommit mem-lock=off,cpu-pm=off", "-rtc base=localtime,driftfix=slew",
        "-boot order=c,menu=off,strict=on", "-no-reboot -no-acpi -no-user-config",
        "-machine pc,acpi=off,vmport=off", "-msg timestamp=off,guest-name=on",
        "-cpu host,migratable=on", "-object secret,id=s,data=aGVsbG8=,format=base64",
        "-chardev socket,id=m,path=/tmp/a,,b.sock,server=on,wait=off -mon chardev=m",
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(lines); i++) {
        g_autoptr(GError) err = NULL;
        MachineConfig *c = parse(lines[i], &err);

        if (err) {
            g_error("'%s': %s", lines[i], err->message);
        }
        machine_config_free(c);
    }
}

/* query-command-line-options lists the keys the parsers check, and no -sandbox. */
static void test_option_infos(void)
{
    size_t n;
    const CmdlineOptionInfo *infos = cmdline_option_infos(&n);
    bool chardev_fd = false;

    for (size_t i = 0; i < n; i++) {
        g_assert_cmpstr(infos[i].name, !=, "sandbox");
        for (size_t k = 0; k < G_N_ELEMENTS(infos[i].keys) && infos[i].keys[k]; k++) {
            for (const char *const *key = infos[i].keys[k]; *key; key++) {
                chardev_fd |= !strcmp(infos[i].name, "chardev") && !strcmp(*key, "fd");
            }
        }
    }
    g_assert_true(chardev_fd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cmdline-manager/libvirt-domain-line", test_libvirt_domain_line);
    g_test_add_func("/cmdline-manager/probe-line", test_probe_line);
    g_test_add_func("/cmdline-manager/fdset", test_fdset);
    g_test_add_func("/cmdline-manager/smp-topology", test_smp_topology);
    g_test_add_func("/cmdline-manager/refusals", test_refusals);
    g_test_add_func("/cmdline-manager/accepted", test_accepted);
    g_test_add_func("/cmdline-manager/option-infos", test_option_infos);
    return g_test_run();
}
