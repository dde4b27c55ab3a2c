# SPDX-License-Identifier: GPL-2.0-or-later
"""A small QMP client and VM launcher for scripts (demo, benchmarks).

Works with frostvm and with QEMU alike: both speak QMP over a unix socket.
"""
import fcntl
import json
import os
import socket
import subprocess
import time


KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12


def kvm_usable():
    """/dev/kvm opens read-write and speaks KVM's API (KVM_GET_API_VERSION is 12): not,
    say, another device bound over it, which only the ioctl tells apart."""
    try:
        fd = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION) == KVM_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=30.0):
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
        self.greeting = self._recv()
        self.cmd('qmp_capabilities')

    def _recv_line(self):
        """The next line from the VMM, as it sent it (scripts/qmp-transcript.py records it)."""
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError('QMP connection closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line

    def _recv(self):
        return json.loads(self._recv_line())

    def _send(self, text):
        self.sock.sendall(text.encode() + b'\n')

    def cmd_raw(self, name, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self._send(json.dumps(msg))
        while True:
            r = self._recv()
            if 'event' in r:
                self.events.append(r)
                continue
            return r

    def cmd(self, name, **args):
        r = self.cmd_raw(name, **args)
        if 'error' in r:
            raise QMPError(f"{name}: {r['error'].get('desc')}")
        return r.get('return')

    def hmp(self, line):
        return self.cmd('human-monitor-command', **{'command-line': line})

    def wait_event(self, name, timeout=60.0, pred=None):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e['event'] == name and (pred is None or pred(e)):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError(f'timed out waiting for event {name}')
            self.sock.settimeout(left)
            try:
                r = self._recv()
            except socket.timeout:
                continue
            if 'event' in r:
                self.events.append(r)

    def close(self):
        self.sock.close()


def wait_for_line(path, needle, timeout=60.0, start=0, proc=None):
    """Wait until the file at path has a line containing needle after byte start.
    Returns (line, offset after it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, 'rb') as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            data = b''
        pos = 0
        for raw in data.split(b'\n')[:-1]:
            pos += len(raw) + 1
            line = raw.decode(errors='replace')
            if needle in line:
                return line, start + pos
        if proc is not None and proc.poll() is not None:
            raise QMPError(f'VM exited with status {proc.returncode} before "{needle}"')
        time.sleep(0.02)
    raise QMPError(f'timed out waiting for "{needle}" in {path}')


def parse_kv(line):
    out = {}
    for tok in line.split():
        if '=' in tok:
            k, v = tok.split('=', 1)
            out[k] = v
    return out


def start_vm(argv, log):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def stop_vm(proc, timeout=10):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
