#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What a manager such as libvirt does to frostvm, without libvirt (TAP).

Runs as any user and on any machine (KVM or not: the guest is -accel test
here, so the payload's reports come from the test accelerator): the probe
(-machine none -daemonize), a monitor on an inherited listening socket that
clients reconnect to by path, CR LF framing, the pty serial named by
query-chardev, -S then cont, getfd with SCM_RIGHTS and fd:NAME / fd:N
migrations (libvirt's save and restore), system_powerdown with and without
-no-shutdown, and the refusals. Environment: FROSTVM.
"""
import array
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time

FROSTVM = os.path.abspath(os.environ['FROSTVM'])
GUEST = ['-accel', 'test', '-m', '64', '-append', 'mem=8M report_ms=50']
PROGRESS = re.compile(r'PROGRESS .*\bsteps=(\d+)\b.*\bregs=(\w+) errors=(\d+)')


class Qmp:
    """A QMP client that checks libvirt's framing: one JSON object per CR LF line."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.buf = b''
        self.events = []
        greeting = self._line()
        assert 'QMP' in greeting, greeting
        assert self.execute('qmp_capabilities') == {}

    def _line(self):
        while b'\r\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError('frostvm closed the monitor')
            self.buf += data
        line, self.buf = self.buf.split(b'\r\n', 1)
        assert b'\n' not in line, 'a message spans lines'
        return json.loads(line)

    def command(self, name, arguments=None, fds=()):
        cmd = {'execute': name, 'id': f'libvirt-{name}'}
        if arguments is not None:
            cmd['arguments'] = arguments
        data = json.dumps(cmd).encode() + b'\r\n'
        if fds:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                        array.array('i', fds))])
        else:
            self.sock.sendall(data)
        while True:
            msg = self._line()
            if 'event' in msg:
                self.events.append(msg)
                continue
            assert msg.get('id') == cmd['id'], msg
            return msg

    def execute(self, name, arguments=None, fds=()):
        reply = self.command(name, arguments, fds)
        assert 'return' in reply, reply
        return reply['return']

    def event(self, name, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev['event'] == name:
                    return self.events.pop(i)
            if time.monotonic() > deadline:
                raise AssertionError(f'no {name} event')
            self.events.append(self._line())

    def close(self):
        self.sock.close()


def listening_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


def start_domain(tmp, extra=(), pass_fds=()):
    """Start frostvm as libvirt does: monitor on an inherited listening socket, -S."""
    path = os.path.join(tmp, f'monitor-{time.monotonic_ns()}.sock')
    lsock = listening_socket(path)
    fd = lsock.fileno()
    cmd = [FROSTVM, '-S', '-no-user-config', '-nodefaults', '-display', 'none',
           '-chardev', f'socket,id=charmonitor,fd={fd},server=on,wait=off',
           '-mon', 'chardev=charmonitor,id=monitor,mode=control',
           '-chardev', 'pty,id=charserial0',
           '-device', '{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}',
           '-msg', 'timestamp=on'] + GUEST + list(extra)
    proc = subprocess.Popen(cmd, pass_fds=(fd,) + tuple(pass_fds), stderr=subprocess.PIPE)
    lsock.close()
    return proc, path


def read_progress(pty_path, timeout=30, after=-1):
    fd = os.open(pty_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~(termios.ICANON | termios.ECHO)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    buf = b''
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                time.sleep(0.02)
            for line in buf.split(b'\n')[:-1]:
                m = PROGRESS.search(line.decode(errors='replace'))
                if m and int(m.group(1)) > after:
                    return int(m.group(1)), m.group(2), int(m.group(3))
    finally:
        os.close(fd)
    raise AssertionError(f'no report past {after} steps on {pty_path}')


def serial_pty(qmp):
    for chardev in qmp.execute('query-chardev'):
        if chardev['label'] == 'charserial0':
            assert chardev['filename'].startswith('pty:'), chardev
            return chardev['filename'][4:]
    raise AssertionError('query-chardev lists no charserial0')


def stop_process(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_probe(tmp):
    """libvirt's probe line: the parent exits 0 with the socket already listening."""
    sock = os.path.join(tmp, 'qmp.monitor')
    pidfile = os.path.join(tmp, 'qmp.pid')
    r = subprocess.run([FROSTVM, '-S', '-no-user-config', '-nodefaults', '-nographic',
                        '-machine', 'none,accel=kvm:tcg', '-qmp',
                        f'unix:{sock},server=on,wait=off', '-pidfile', pidfile, '-daemonize'],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    pid = int(open(pidfile).read())
    try:
        qmp = Qmp(sock, timeout=1)   # one connect, as libvirt 9.8 makes: no retry needed
        assert qmp.execute('query-version')['qemu']['major'] >= 4
        assert qmp.execute('query-target') == {'arch': 'x86_64'}
        kvm = qmp.execute('query-kvm')
        assert set(kvm) == {'enabled', 'present'}
        assert any(t['name'] == 'tcg-accel' for t in qmp.execute('qom-list-types'))
        assert qmp.command('device-list-properties',
                           {'typename': 'virtio-blk-pci'})['error']['class'] == 'DeviceNotFound'
        assert qmp.command('query-tpm-models')['error']['class'] == 'CommandNotFound'
        assert not any(o['option'] == 'sandbox'
                       for o in qmp.execute('query-command-line-options'))
        assert qmp.command('cont')['error']['desc'] == "The 'none' machine has no guest to run"
        qmp.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while os.path.exists(f'/proc/{pid}') and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f'/proc/{pid}/status') or 'zombie' in open(
        f'/proc/{pid}/status').read().lower()


def test_domain_monitor(tmp):
    """-S, cont and RESUME; a pty serial; reconnect by path; real vCPU thread ids, before cont too."""
    proc, path = start_domain(tmp)
    try:
        qmp = Qmp(path)
        assert qmp.execute('query-status')['status'] == 'prelaunch'
        assert qmp.execute('qom-list', {'path': '/machine/peripheral'}) == [
            {'name': 'type', 'type': 'string'}, {'name': 'serial0', 'type': 'child<isa-serial>'}]
        # libvirt asks before its first cont, to put the vCPU threads in their cgroups.
        tid = qmp.execute('query-cpus-fast')[0]['thread-id']
        assert tid != proc.pid and os.path.isdir(f'/proc/{proc.pid}/task/{tid}')
        qmp.execute('cont')
        qmp.event('RESUME')
        pty = serial_pty(qmp)
        steps, regs, errors = read_progress(pty)
        assert regs == 'ok' and errors == 0
        tid = qmp.execute('query-cpus-fast')[0]['thread-id']
        assert tid != proc.pid and os.path.isdir(f'/proc/{proc.pid}/task/{tid}')
        # A manager that goes away and comes back reconnects by the socket's path.
        qmp.close()
        qmp = Qmp(path)
        assert qmp.execute('query-status')['status'] == 'running'
        qmp.execute('stop')
        qmp.event('STOP')
        qmp.execute('cont')
        qmp.event('RESUME')
        read_progress(pty, after=steps)
        qmp.close()
    finally:
        stop_process(proc)
    assert proc.returncode == 0, proc.stderr.read()


def test_save_restore_fd(tmp):
    """libvirt's save (getfd + fd:NAME after its own header) and restore (fd:N)."""
    image = os.path.join(tmp, 'saved')
    header = b'MANAGER HEADER\n' * 10
    proc, path = start_domain(tmp)
    try:
        qmp = Qmp(path)
        qmp.execute('cont')
        qmp.event('RESUME')
        before, _, _ = read_progress(serial_pty(qmp))
        qmp.execute('stop')
        qmp.event('STOP')
        qmp.execute('migrate-set-parameters', {'max-bandwidth': 9223372036853727232})
        with open(image, 'wb') as f:
            f.write(header)
            f.flush()
            qmp.execute('getfd', {'fdname': 'migrate'}, fds=[f.fileno()])
        reply = qmp.command('migrate', {'detach': True, 'resume': False, 'uri': 'fd:migrate'})
        # MIGRATION setup comes before the reply, or libvirt sees no job.
        assert qmp.events and qmp.events[0]['event'] == 'MIGRATION', qmp.events
        assert qmp.events[0]['data']['status'] == 'setup'
        assert 'return' in reply, reply
        while qmp.event('MIGRATION')['data']['status'] not in ('completed', 'failed'):
            pass
        assert qmp.execute('query-migrate')['status'] == 'completed'
        qmp.close()
    finally:
        stop_process(proc)
    with open(image, 'rb') as f:
        assert f.read(len(header)) == header, 'the manager header was overwritten'
    f = open(image, 'rb')
    f.seek(len(header))
    proc, path = start_domain(tmp, ['-incoming', 'defer'], pass_fds=(f.fileno(),))
    try:
        qmp = Qmp(path)
        qmp.execute('migrate-incoming', {'uri': f'fd:{f.fileno()}'})
        f.close()
        while qmp.event('MIGRATION')['data']['status'] not in ('completed', 'failed'):
            pass
        assert qmp.execute('query-migrate')['status'] == 'completed'
        qmp.execute('cont')
        qmp.event('RESUME')
        after, regs, errors = read_progress(serial_pty(qmp))
        assert after > before and regs == 'ok' and errors == 0, (before, after, regs, errors)
        qmp.close()
    finally:
        stop_process(proc)


def test_powerdown(tmp):
    """system_powerdown: POWERDOWN, then SHUTDOWN; -no-shutdown keeps the process."""
    for no_shutdown in (True, False):
        proc, path = start_domain(tmp, ['-no-shutdown'] if no_shutdown else [])
        try:
            qmp = Qmp(path)
            qmp.execute('cont')
            qmp.execute('system_powerdown')
            qmp.event('POWERDOWN')
            ev = qmp.event('SHUTDOWN')
            assert ev['data'] == {'guest': False, 'reason': 'host-qmp-system-powerdown'}, ev
            if no_shutdown:
                assert qmp.execute('query-status')['status'] == 'shutdown'
                assert proc.poll() is None
                qmp.close()
                # A signal still ends it, as libvirt's destroy does.
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            assert proc.returncode == 0, proc.stderr.read()
        finally:
            stop_process(proc)


def test_refusals(tmp):
    cases = [
        (['-sandbox', 'on,obsolete=deny,spawn=deny'], b'no seccomp sandbox'),
        (['-no-such-option'], b'-no-such-option: invalid option'),
        (['-machine', 'pc,usb=on'], b'no USB controller'),
        (['-msg', 'timestamp=on', '-overcommit', 'mem-lock=on'], b'lock guest memory'),
    ]
    for args, message in cases:
        r = subprocess.run([FROSTVM] + GUEST + args, capture_output=True, timeout=30)
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)


def main():
    tests = [('probe: -machine none -daemonize, then the probe dialogue', test_probe),
             ('monitor on an inherited socket: -S, cont, pty serial, reconnect, vCPU tids',
              test_domain_monitor),
             ('save with getfd and fd:NAME, restore with -incoming defer and fd:N',
              test_save_restore_fd),
             ('system_powerdown with and without -no-shutdown', test_powerdown),
             ('refused options fail with a reason', test_refusals)]
    print(f'1..{len(tests)}', flush=True)
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        with tempfile.TemporaryDirectory(prefix='frostvm-manager-') as tmp:
            try:
                fn(tmp)
                print(f'ok {i} - {name}', flush=True)
            except Exception as e:  # noqa: BLE001 - reported as the case's result
                failed += 1
                print(f'not ok {i} - {name} # {type(e).__name__}: {e}'.replace('\n', ' '),
                      flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
