#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""libvirt drives frostvm: a domain's life with Debian's libvirtd and virsh (TAP).

A private libvirtd runs in a mount namespace of its own, over directories of
this test (configuration, run, lib, log and cache of libvirt, and a passwd and
group with the user and groups libvirt's QEMU driver looks up), so a libvirt
the machine may run is never touched. Its domain runs the test payload: on
KVM as <domain type='kvm'>, without KVM as type='qemu' with -accel test added
through <qemu:commandline> (libvirt passes -accel tcg first; frostvm has no
TCG and falls through to the next -accel, as QEMU tries repeated -accel
options in order). Every virsh command and its output is printed as a TAP
comment, so a run is also a transcript.

Environment: FROSTVM, FROSTVM_IMG, FROSTVM_PAYLOAD, PAYLOAD_CHECK (paths).
Skips, with the reason, only where libvirtd cannot run: not root, libvirtd or
virsh missing, no mount namespaces, or libvirtd not answering.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'scripts'))
from frostvm_qmp import kvm_usable  # noqa: E402

DOMAIN = 'frostvm-libvirt-test'
GUEST_RAM_MIB = 256
PAYLOAD_APPEND = 'mem=32M report_ms=100'
# libvirt's own directories, each bound over a private one in the namespace.
LIBVIRT_DIRS = {
    '/etc/libvirt': 'etc',
    '/run/libvirt': 'run',
    '/var/lib/libvirt': 'lib',
    '/var/log/libvirt': 'log',
    '/var/cache/libvirt': 'cache',
}
PROGRESS = re.compile(r'PROGRESS .*\bsteps=(\d+)\b.*\bregs=(\w+) errors=(\d+)')


class Skip(Exception):
    pass


class Tap:
    """Numbered TAP results; a failed step skips the ones that depend on it."""

    def __init__(self, names):
        self.names = names
        self.done = 0
        self.failed = False
        print(f'1..{len(names)}', flush=True)

    def comment(self, text):
        for line in str(text).splitlines() or ['']:
            print(f'# {line}', flush=True)

    def result(self, ok, detail=''):
        name = self.names[self.done]
        self.done += 1
        print(f'{"ok" if ok else "not ok"} {self.done} - {name}'
              + (f' # {detail}' if detail and not ok else ''), flush=True)

    def skip_rest(self, reason):
        while self.done < len(self.names):
            self.done += 1
            print(f'ok {self.done} - {self.names[self.done - 1]} # SKIP {reason}',
                  flush=True)

    def step(self, fn, on_failure):
        """Runs fn as the next result; once one fails, the rest are skipped."""
        if self.failed:
            self.skip_rest('an earlier step failed')
            return
        try:
            fn()
            self.result(True)
        except Exception as e:  # noqa: BLE001 - any failure is the test's result
            on_failure()
            self.result(False, str(e).replace('\n', ' '))
            self.failed = True

    def remove_or_keep(self, root):
        """The scratch directory goes after a pass and stays, named, after a failure."""
        if not self.failed:
            shutil.rmtree(root, ignore_errors=True)
        else:
            self.comment(f'kept for inspection: {root}')


class Libvirt:
    """A libvirtd of our own in a private mount namespace, and virsh to talk to it."""

    def __init__(self, root, tap):
        self.root = root
        self.tap = tap
        self.proc = None
        self.created_mountpoints = []
        self.socket = os.path.join(root, 'run', 'libvirt-sock')
        self.uri = f'qemu:///system?socket={self.socket}'

    def prepare(self):
        for sub in list(LIBVIRT_DIRS.values()) + ['images', 'lib/qemu', 'log/qemu']:
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        with open(os.path.join(self.root, 'etc', 'libvirtd.conf'), 'w') as f:
            f.write('auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    f'log_outputs = "1:file:{self.root}/libvirtd.log"\n'
                    'log_filters = "1:qemu 1:libvirt 4:object 4:json 4:event 4:util 4:rpc"\n')
        # No systemd, no virtlogd, no security driver on these machines;
        # measured: these are what libvirtd 9.0 needs to run a domain here.
        with open(os.path.join(self.root, 'etc', 'qemu.conf'), 'w') as f:
            f.write('user = "root"\ngroup = "root"\nsecurity_driver = "none"\n'
                    'stdio_handler = "file"\n')
        self._write_accounts()
        for target in LIBVIRT_DIRS:
            if not os.path.isdir(target):
                os.makedirs(target)
                self.created_mountpoints.append(target)

    def _write_accounts(self):
        """passwd and group with what libvirt's QEMU driver looks up, even with user=root."""
        with open('/etc/passwd') as f:
            passwd = f.read()
        with open('/etc/group') as f:
            group = f.read()
        if not re.search(r'^libvirt-qemu:', passwd, re.M):
            passwd += ('libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:'
                       '/usr/sbin/nologin\n')
        for name, gid in (('kvm', 64056), ('libvirt-qemu', 64055)):
            if not re.search(rf'^{name}:', group, re.M):
                group += f'{name}:x:{gid}:\n'
        with open(os.path.join(self.root, 'passwd'), 'w') as f:
            f.write(passwd)
        with open(os.path.join(self.root, 'group'), 'w') as f:
            f.write(group)

    def start(self, timeout=60):
        binds = [f'mount --bind {self.root}/{sub} {target}'
                 for target, sub in LIBVIRT_DIRS.items()]
        binds += [f'mount --bind {self.root}/passwd /etc/passwd',
                  f'mount --bind {self.root}/group /etc/group']
        script = ' && '.join(binds) + (f' && exec libvirtd --pid-file {self.root}/libvirtd.pid'
                                       f' --config {self.root}/etc/libvirtd.conf')
        self.proc = subprocess.Popen(['unshare', '--mount', '--propagation', 'private',
                                      'sh', '-c', script],
                                     stdout=open(os.path.join(self.root, 'libvirtd.out'), 'a'),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Skip(f'libvirtd exited with status {self.proc.returncode}: '
                           + self.tail('libvirtd.out'))
            r = subprocess.run(['virsh', '-c', self.uri, 'version'], capture_output=True,
                               text=True, timeout=60)
            if r.returncode == 0:
                return
            time.sleep(0.5)
        raise Skip('libvirtd did not answer within %d s: %s' % (timeout, self.tail('libvirtd.out')))

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def kill_domains(self):
        """Whatever libvirt left running (the test failed half-way): its pid files say who."""
        for dirpath, _, files in os.walk(os.path.join(self.root, 'run', 'qemu')):
            for name in files:
                if name.endswith('.pid'):
                    try:
                        os.kill(int(open(os.path.join(dirpath, name)).read()), signal.SIGKILL)
                    except (ValueError, OSError):
                        pass

    def cleanup(self):
        self.stop()
        self.kill_domains()
        for target in self.created_mountpoints:
            try:
                os.rmdir(target)
            except OSError:
                pass

    def tail(self, name, lines=15):
        try:
            with open(os.path.join(self.root, name), errors='replace') as f:
                return ' | '.join(f.read().splitlines()[-lines:])
        except OSError as e:
            return str(e)

    def virsh(self, *args, check=True, timeout=180):
        shown = ' '.join(a if re.fullmatch(r'[\w./:=-]+', a) else repr(a) for a in args)
        self.tap.comment(f'$ virsh {shown}')
        r = subprocess.run(['virsh', '-c', self.uri] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        out = (r.stdout + r.stderr).rstrip('\n')
        if out:
            self.tap.comment(out)
        if check and r.returncode != 0:
            raise AssertionError(f'virsh {shown} failed ({r.returncode}): {out}')
        return r.stdout

    def hmp(self, line):
        return self.virsh('qemu-monitor-command', DOMAIN, '--hmp', line)

    def qmp(self, command, arguments=None):
        cmd = {'execute': command}
        if arguments is not None:
            cmd['arguments'] = arguments
        reply = json.loads(self.virsh('qemu-monitor-command', DOMAIN, json.dumps(cmd)))
        if 'return' not in reply:
            raise AssertionError(f'{command}: {reply}')
        return reply['return']


def domain_xml(kvm, frostvm, payload):
    # Without KVM, libvirt passes -accel tcg for type='qemu' and this adds -accel test.
    extra = '' if kvm else (
        "  <qemu:commandline>\n"
        "    <qemu:arg value='-accel'/>\n"
        "    <qemu:arg value='test'/>\n"
        "  </qemu:commandline>\n")
    return f"""<domain type='{'kvm' if kvm else 'qemu'}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{DOMAIN}</name>
  <memory unit='MiB'>{GUEST_RAM_MIB}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{payload}</kernel>
    <cmdline>{PAYLOAD_APPEND}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>{frostvm}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='pty'/>
  </devices>
{extra}</domain>
"""


class Console:
    """The guest's COM1, read from the pseudo-terminal query-chardev named to libvirt."""

    def __init__(self, lv):
        xml = lv.virsh('dumpxml', DOMAIN)
        m = re.search(r"<serial type='pty'>\s*<source path='([^']+)'", xml)
        if not m:
            raise AssertionError('dumpxml names no pty for the serial port')
        self.path = m.group(1)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        import termios
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO)
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.buf = b''

    def progress(self, timeout=60, after_steps=-1):
        """The next PROGRESS report with more than @after_steps steps: (steps, regs, errors)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b'\n' in self.buf:
                line, self.buf = self.buf.split(b'\n', 1)
                m = PROGRESS.search(line.decode(errors='replace'))
                if m and int(m.group(1)) > after_steps:
                    return int(m.group(1)), m.group(2), int(m.group(3))
            try:
                self.buf += os.read(self.fd, 65536)
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f'no PROGRESS report past {after_steps} steps on {self.path} '
                             f'within {timeout} s')

    def latest(self, timeout=60):
        """Steps of the newest report: waits for one, then takes everything already sent."""
        steps, _, _ = self.progress(timeout)
        while True:
            try:
                self.buf += os.read(self.fd, 65536)
            except OSError:
                break
        for line in self.buf.split(b'\n'):
            m = PROGRESS.search(line.decode(errors='replace'))
            if m:
                steps = max(steps, int(m.group(1)))
        self.buf = b''
        return steps

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def wait_migration(lv, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = lv.hmp('info migrate')
        m = re.search(r'Migration status: (\S+)', info)
        if m and m.group(1) in ('completed', 'failed', 'cancelled'):
            return m.group(1)
        time.sleep(0.5)
    raise AssertionError('the migration did not finish')


def check_image(tap, image_tool, payload_check, image, workdir):
    r = subprocess.run([image_tool, 'check', image], capture_output=True, text=True)
    tap.comment(f'$ frostvm-img check {os.path.basename(image)}')
    tap.comment((r.stdout + r.stderr).strip())
    if r.returncode != 0:
        raise AssertionError(f'frostvm-img check {image} failed')
    raw = os.path.join(workdir, 'ram.raw')
    subprocess.run([image_tool, 'dump-ram', image, raw], check=True, capture_output=True)
    r = subprocess.run([payload_check, raw], capture_output=True, text=True)
    os.unlink(raw)
    tap.comment('payload-check: ' + (r.stdout + r.stderr).strip().replace('\n', ' | '))
    if r.returncode != 0:
        raise AssertionError(f'the payload invariant does not hold in {image}')
    m = re.search(r'guest: steps=(\d+)', r.stdout)
    return int(m.group(1)) if m else 0


def restore_outside(tap, frostvm, kvm, image, image_steps, workdir):
    """Restore a snapshot with frostvm itself; the payload must go on from it, intact."""
    serial = os.path.join(workdir, 'restore-serial.txt')
    cmd = [frostvm, '-m', str(GUEST_RAM_MIB), '-display', 'none', '-nodefaults',
           '-serial', f'file:{serial}', '-incoming', f'file:{image}']
    cmd += ['-accel', 'kvm'] if kvm else ['-accel', 'test', '-append', PAYLOAD_APPEND]
    tap.comment('$ ' + ' '.join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        reports = []
        while time.monotonic() < deadline and len(reports) < 3:
            time.sleep(0.2)
            if proc.poll() is not None:
                raise AssertionError('frostvm exited during the restore: '
                                     + proc.stderr.read().decode(errors='replace'))
            with open(serial, errors='replace') if os.path.exists(serial) else open(os.devnull) as f:
                reports = [PROGRESS.search(line) for line in f]
                reports = [m for m in reports if m]
        if len(reports) < 3:
            raise AssertionError('the restored guest printed no reports')
        steps = [int(m.group(1)) for m in reports]
        tap.comment(f'image taken at step {image_steps}; restored guest reports: steps '
                    f'{steps}, regs {[m.group(2) for m in reports]}, errors '
                    f'{[m.group(3) for m in reports]}')
        # It goes on from the snapshot's step count, never from the start.
        if steps[0] < image_steps or steps != sorted(steps) or any(
                m.group(2) != 'ok' or m.group(3) != '0' for m in reports):
            raise AssertionError('the restored guest did not continue consistently')
    finally:
        proc.kill()
        proc.wait()


def main():
    frostvm = os.path.abspath(os.environ['FROSTVM'])
    image_tool = os.path.abspath(os.environ['FROSTVM_IMG'])
    payload = os.path.abspath(os.environ['FROSTVM_PAYLOAD'])
    payload_check = os.path.abspath(os.environ['PAYLOAD_CHECK'])
    kvm = kvm_usable()
    steps = ['libvirtd starts, isolated in its own mount namespace',
             f'define a {"kvm" if kvm else "qemu (-accel test)"} domain whose emulator is frostvm',
             'start; domstate and list say running; the serial pty carries the payload',
             'query-cpus-fast names a real vCPU thread of the frostvm process',
             'qemu-monitor-command --hmp and JSON forms',
             'background snapshot with the two HMP commands to exec:cat',
             'frostvm-img check and the payload invariant hold in the exec: snapshot',
             'the exec: snapshot restores and the payload continues consistently',
             'background snapshot to file:, checked',
             'suspend and resume (STOP and RESUME events)',
             'save and restore in libvirt\'s format; the payload continues consistently',
             'libvirtd restarts while the domain runs and reconnects by path',
             'destroy, then undefine']
    tap = Tap(steps)
    tap.comment(f'machine kind: {"KVM" if kvm else "no KVM: type=qemu, -accel tcg then -accel test"}')
    if os.geteuid() != 0:
        tap.skip_rest('libvirtd runs as root here and this test is not root')
        return 0
    for tool in ('libvirtd', 'virsh', 'unshare'):
        if not shutil.which(tool):
            tap.skip_rest(f'{tool} is not installed (scripts/install-deps.sh installs it)')
            return 0
    root = tempfile.mkdtemp(prefix='frostvm-libvirt-')
    lv = Libvirt(root, tap)
    console = None
    try:
        try:
            lv.prepare()
            lv.start()
        except Skip as e:
            tap.skip_rest(f'libvirtd cannot start here: {e}')
            return 0
        except (OSError, subprocess.SubprocessError) as e:
            tap.skip_rest(f'libvirtd cannot start here: {e}')
            return 0
        tap.result(True)
        images = os.path.join(root, 'images')

        def logs():
            tap.comment(f'libvirtd log: {lv.tail("libvirtd.log", 8)}')
            tap.comment(f'domain log: {lv.tail(f"log/qemu/{DOMAIN}.log", 8)}')

        def define():
            xml = os.path.join(root, 'domain.xml')
            with open(xml, 'w') as f:
                f.write(domain_xml(kvm, frostvm, payload))
            lv.virsh('define', xml)

        state = {}

        def start():
            nonlocal console
            lv.virsh('start', DOMAIN)
            assert lv.virsh('domstate', DOMAIN).strip() == 'running'
            assert re.search(rf'\b{DOMAIN}\s+running', lv.virsh('list'))
            console = Console(lv)
            steps_now, regs, errors = console.progress()
            assert regs == 'ok' and errors == 0, (regs, errors)
            state['steps'] = steps_now

        def vcpu_thread():
            pid = int(open(os.path.join(root, 'run', 'qemu', f'{DOMAIN}.pid')).read())
            cpus = lv.qmp('query-cpus-fast')
            assert len(cpus) == 1, cpus
            tid = cpus[0]['thread-id']
            assert tid != pid and os.path.isdir(f'/proc/{pid}/task/{tid}'), (pid, tid)

        def monitor_forms():
            assert lv.hmp('info status').strip() == 'VM status: running'
            assert lv.qmp('query-status')['status'] == 'running'
            assert lv.qmp('query-kvm')['enabled'] == kvm

        def snapshot_exec():
            path = os.path.join(images, f'{DOMAIN}.snap')
            state['exec_image'] = path
            lv.hmp('migrate_set_capability background-snapshot on')
            lv.hmp(f'migrate "exec:cat > {path}"')
            assert wait_migration(lv) == 'completed'
            # The guest never stopped for long: it still runs and reports.
            assert lv.virsh('domstate', DOMAIN).strip() == 'running'
            console.progress(after_steps=state['steps'])

        def snapshot_file():
            path = os.path.join(images, f'{DOMAIN}-file.snap')
            lv.hmp(f'migrate file:{path}')
            assert wait_migration(lv) == 'completed'
            lv.hmp('migrate_set_capability background-snapshot off')
            check_image(tap, image_tool, payload_check, path, root)

        def suspend_resume():
            lv.virsh('suspend', DOMAIN)
            assert lv.virsh('domstate', DOMAIN).strip() == 'paused'
            lv.virsh('resume', DOMAIN)
            assert lv.virsh('domstate', DOMAIN).strip() == 'running'
            state['steps'], _, _ = console.progress(after_steps=state['steps'])

        def save_restore():
            nonlocal console
            path = os.path.join(images, f'{DOMAIN}.save')
            before = console.latest()
            console.close()
            console = None
            lv.virsh('save', DOMAIN, path)
            assert lv.virsh('domstate', DOMAIN).strip() == 'shut off'
            with open(path, 'rb') as f:
                assert f.read(16) == b'LibvirtQemudSave', 'not libvirt\'s save format'
            lv.virsh('restore', path)
            assert lv.virsh('domstate', DOMAIN).strip() == 'running'
            console = Console(lv)
            after, regs, errors = console.progress()
            tap.comment(f'steps before save {before}, first report after restore {after}')
            # The payload resumes from its saved step count, with its registers.
            assert after > before and regs == 'ok' and errors == 0, (before, after, regs, errors)
            state['steps'] = after

        def restart():
            lv.restart()
            lv.virsh('list')
            assert lv.virsh('domstate', DOMAIN).strip() == 'running'
            assert lv.hmp('info status').strip() == 'VM status: running'
            lv.virsh('suspend', DOMAIN)
            lv.virsh('resume', DOMAIN)
            console.progress(after_steps=state['steps'])

        def destroy_undefine():
            console.close()
            lv.virsh('destroy', DOMAIN)
            assert lv.virsh('domstate', DOMAIN).strip() == 'shut off'
            lv.virsh('undefine', DOMAIN)
            assert DOMAIN not in lv.virsh('list', '--all')

        for fn in (define, start, vcpu_thread, monitor_forms, snapshot_exec,
                   lambda: state.update(image_steps=check_image(tap, image_tool, payload_check,
                                                                state['exec_image'], root)),
                   lambda: restore_outside(tap, frostvm, kvm, state['exec_image'],
                                           state['image_steps'], root),
                   snapshot_file, suspend_resume, save_restore, restart, destroy_undefine):
            tap.step(fn, logs)
    finally:
        if console:
            console.close()
        lv.cleanup()
        tap.remove_or_keep(root)
    return 0


if __name__ == '__main__':
    sys.exit(main())
