#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Record a real QMP session with frostvm and the test payload as docs/qmp-transcript.md.

    scripts/qmp-transcript.py [--build build] > docs/qmp-transcript.md

Runs build/frostvm (KVM where /dev/kvm works, else -accel test) in a temporary
directory, sends one line per command and prints every line it reads, as it
reads it. Two background snapshots in a row show the event stream and what
query-migrate reports, including the buffer pool the second one reused.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frostvm_qmp import kvm_usable  # noqa: E402

COMMANDS = [
    {'execute': 'query-status', 'id': 1},
    {'execute': 'stop'},
    {'execute': 'cont'},
    {'execute': 'human-monitor-command', 'arguments': {'command-line': 'info status'}},
    {'execute': 'migrate-set-capabilities',
     'arguments': {'capabilities': [{'capability': 'background-snapshot', 'state': True}]}},
    {'execute': 'query-migrate-parameters'},
    {'execute': 'migrate', 'arguments': {'uri': 'exec:cat > ./vm_state'}},
    'wait',
    {'execute': 'query-migrate'},
    {'execute': 'migrate', 'arguments': {'uri': 'file:./vm_state2'}},
    'wait',
    {'execute': 'human-monitor-command', 'arguments': {'command-line': 'info migrate'}},
    {'execute': 'migrate-set-parameters', 'arguments': {'background-snapshot-buffer-keep': 86400001}},
    {'execute': 'frobnicate'},
    {'execute': 'quit'},
]


class Session:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(60)
        self.buf = b''
        self.lines = []

    def read(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('frostvm closed the QMP socket')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        text = line.decode().rstrip('\r')
        self.lines.append('<- ' + text)
        return json.loads(text)

    def send(self, cmd):
        text = json.dumps(cmd)
        self.lines.append('-> ' + text)
        self.sock.sendall(text.encode() + b'\n')
        while True:
            msg = self.read()
            if 'return' in msg or 'error' in msg:
                return msg

    def wait_completed(self):
        while True:
            msg = self.read()
            if msg.get('event') == 'MIGRATION' and \
                    msg['data']['status'] in ('completed', 'failed', 'cancelled'):
                return


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--build', default='build')
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    kvm = kvm_usable()
    with tempfile.TemporaryDirectory() as d:
        argv = [os.path.join(build, 'frostvm'), '-m', '256',
                '-kernel', os.path.join(build, 'tests/guest/payload.elf'),
                '-append', 'mem=32M', '-serial', 'file:serial.log',
                '-qmp', 'unix:qmp.sock,server=on,wait=off', '-display', 'none']
        if not kvm:
            argv[1:1] = ['-accel', 'test']
        vm = subprocess.Popen(argv, cwd=d)
        try:
            s = Session(os.path.join(d, 'qmp.sock'))
            s.read()    # the greeting
            s.send({'execute': 'qmp_capabilities'})
            time.sleep(1)   # the payload's first sweep
            for cmd in COMMANDS:
                if cmd == 'wait':
                    s.wait_completed()
                else:
                    s.send(cmd)
            try:
                while True:
                    s.read()
            except (EOFError, OSError):
                pass
        finally:
            vm.wait(timeout=30)
    shown = ' '.join(a if ' ' not in a else f"'{a}'" for a in argv[1:])
    shown = shown.replace(os.path.join(build, ''), 'build/')
    print('# A real QMP session with frostvm\n')
    print(f'Made by `scripts/qmp-transcript.py` with `build/frostvm` '
          f'({"KVM" if kvm else "-accel test, no /dev/kvm"}) and the test payload as the guest:\n')
    print(f'    build/frostvm {shown}\n')
    print('and a client on `qmp.sock` that sends one line per command and prints everything it')
    print('reads. `->` is the client, `<-` is frostvm; long replies are shown whole. See')
    print('[qmp.md](qmp.md) for every command.\n')
    print('```')
    print('\n'.join(s.lines))
    print('```\n')
    print('The background snapshots show on the event stream: `MIGRATION` `setup`, `active`,')
    print('then one `STOP`/`RESUME` pair (the snapshot\'s only pause) and `completed` when the')
    print('image is whole. The second snapshot, within `background-snapshot-buffer-keep` of the')
    print('first, reused its buffer pool (`buffer-pool-reused` in `info migrate`\'s "buffer')
    print('pool" line: "kept from the last snapshot"). A value out of range is refused with the')
    print('range, and an unknown command with QEMU\'s error.')


if __name__ == '__main__':
    main()
