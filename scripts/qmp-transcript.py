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
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frostvm_qmp import QMP, QMPError, kvm_usable  # noqa: E402

COMMANDS = [
    ('query-status', {}),
    ('stop', {}),
    ('cont', {}),
    ('human-monitor-command', {'command-line': 'info status'}),
    ('migrate-set-capabilities',
     {'capabilities': [{'capability': 'background-snapshot', 'state': True}]}),
    ('query-migrate-parameters', {}),
    ('migrate', {'uri': 'exec:cat > ./vm_state'}),
    'wait',
    ('query-migrate', {}),
    ('migrate', {'uri': 'file:./vm_state2'}),
    'wait',
    ('human-monitor-command', {'command-line': 'info migrate'}),
    ('migrate-set-parameters', {'background-snapshot-buffer-keep': 86400001}),
    ('frobnicate', {}),
    ('quit', {}),
]


class Session(QMP):
    """The scripts' QMP client, recording every line it sends and reads, in order."""

    def __init__(self, path):
        self.lines = []
        super().__init__(path, timeout=60)

    def _send(self, text):
        self.lines.append('-> ' + text)
        super()._send(text)

    def _recv_line(self):
        line = super()._recv_line()
        self.lines.append('<- ' + line.decode().rstrip('\r'))
        return line

    def drain(self):
        """Read to the end (after quit: the SHUTDOWN event, then the socket closes)."""
        try:
            while True:
                self._recv()
        except (QMPError, OSError):
            pass


def completed(event):
    return event['data']['status'] in ('completed', 'failed', 'cancelled')


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
            time.sleep(1)   # the payload's first sweep
            for cmd in COMMANDS:
                if cmd == 'wait':
                    s.wait_event('MIGRATION', pred=completed)
                else:
                    s.cmd_raw(cmd[0], **cmd[1])
            s.drain()
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
