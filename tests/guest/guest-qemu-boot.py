#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Boots the test payload under QEMU (with KVM where /dev/kvm works, else with TCG),
waits until it is READY and reports healthy PROGRESS lines, stops the guest, dumps its
memory with HMP pmemsave and checks the dump with payload-check: a real image must
pass, a copy with one page counter changed must fail. Exit status 77 (skip) when QEMU
is missing.

usage: guest-qemu-boot.py [--smp N] [--order seq|random] PAYLOAD_ELF PAYLOAD_CHECK
"""
import argparse
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'scripts'))
from frostvm_qmp import kvm_usable  # noqa: E402

GUEST_MB = 128
APPEND = 'mem=16M report_ms=100'
TIMEOUT_S = 60
CTL_GPA = 0x200000
PAGE = 4096



def skip(reason):
    print(f'SKIP: {reason}')
    sys.exit(77)


def fail(reason):
    print(f'FAIL: {reason}')
    sys.exit(1)


class Hmp:
    """The human monitor over a unix socket: send a line, read up to the prompt."""

    def __init__(self, path):
        deadline = time.monotonic() + 10
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
        self.sock.settimeout(30)
        self._read_prompt()

    def _read_prompt(self):
        buf = b''
        while not buf.endswith(b'(qemu) '):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError('monitor closed')
            buf += chunk
        return buf.decode(errors='replace')

    def send(self, line):
        """Sends a line without waiting for an answer (for quit)."""
        self.sock.sendall(line.encode() + b'\n')

    def command(self, line):
        self.sock.sendall(line.encode() + b'\n')
        return self._read_prompt()


def serial_reader(stream, lines):
    for raw in stream:
        lines.put(raw.decode(errors='replace').rstrip('\r\n'))
    lines.put(None)


def wait_progress(lines, log, count, what):
    """Waits for `count` PROGRESS lines with regs=ok errors=0; returns the last."""
    deadline = time.monotonic() + TIMEOUT_S
    seen = 0
    last = None
    while seen < count:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            fail(f'timed out waiting for {what}')
        if line is None:
            fail(f'QEMU exited while waiting for {what}')
        log.append(line)
        if line.startswith(('MISMATCH', 'FAIL', 'FAULT', 'PAYLOAD ERROR')):
            fail(f'payload reported: {line}')
        if line.startswith('PROGRESS'):
            if ' regs=ok' not in line or ' errors=0' not in line:
                fail(f'unhealthy progress: {line}')
            seen += 1
            last = line
    return last


def wait_line(lines, log, prefix):
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            fail(f'timed out waiting for "{prefix}"')
        if line is None:
            fail(f'QEMU exited before "{prefix}"')
        log.append(line)
        if line.startswith(('MISMATCH', 'FAIL', 'FAULT', 'PAYLOAD ERROR')):
            fail(f'payload reported: {line}')
        if line.startswith(prefix):
            return line


def run_check(checker, *args):
    proc = subprocess.run([checker, *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def corrupt_copy(src, dst):
    """Copies the dump and adds one to word 0 of a page that is not being written."""
    shutil.copyfile(src, dst)
    with open(dst, 'r+b') as f:
        f.seek(CTL_GPA)
        ctl = f.read(256)
        base, npages = struct.unpack_from('<QQ', ctl, 16)
        cur = struct.unpack_from('<Q', ctl, 128)[0]
        page = (cur + npages // 2) % npages if cur < npages else npages // 2
        f.seek(base + page * PAGE)
        word0 = struct.unpack('<Q', f.read(8))[0]
        f.seek(base + page * PAGE)
        f.write(struct.pack('<Q', word0 + 1))
    return page


def main():
    ap = argparse.ArgumentParser(description='Boot the test payload under QEMU (KVM or '
                                 'TCG) and check a memory dump of it.')
    ap.add_argument('--smp', type=int, default=1, help='vCPUs (the payload uses all)')
    ap.add_argument('--order', default='seq', choices=['seq', 'random'])
    ap.add_argument('payload')
    ap.add_argument('checker')
    args = ap.parse_args()
    payload, checker = args.payload, args.checker
    append = f'{APPEND} order={args.order} cpus={args.smp}'
    qemu = shutil.which('qemu-system-x86_64')
    if not qemu:
        skip('qemu-system-x86_64 is not installed')
    # The payload is the same program under either; KVM is the reference where it exists.
    accel = ['-enable-kvm'] if kvm_usable() else ['-accel', 'tcg']
    print(f'QEMU with {" ".join(accel)}')

    log = []
    with tempfile.TemporaryDirectory(prefix='guest-qemu-boot-') as tmp:
        mon = os.path.join(tmp, 'hmp.sock')
        dump = os.path.join(tmp, 'ram.raw')
        bad = os.path.join(tmp, 'ram-corrupt.raw')
        cmd = [qemu] + accel + ['-machine', 'pc', '-m', str(GUEST_MB), '-smp', str(args.smp),
               '-display', 'none', '-nodefaults', '-serial', 'stdio',
               '-monitor', f'unix:{mon},server=on,wait=off',
               '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
               '-kernel', payload, '-append', append]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        lines = queue.Queue()
        threading.Thread(target=serial_reader, args=(proc.stdout, lines),
                         daemon=True).start()
        try:
            wait_line(lines, log, 'PAYLOAD START')
            wait_line(lines, log, 'PAYLOAD READY')
            last = wait_progress(lines, log, 2, 'two PROGRESS lines after READY')
            rc, out = run_check(checker, '--progress', last)
            if rc != 0:
                fail(f'register checksum of "{last}": {out.strip()}')
            print(f'csum verified: {out.strip()}')

            hmp = Hmp(mon)
            hmp.command('stop')
            hmp.command(f'pmemsave 0 {GUEST_MB << 20} "{dump}"')
            if not os.path.exists(dump) or os.path.getsize(dump) != GUEST_MB << 20:
                fail('pmemsave did not write the whole memory')
            rc, out = run_check(checker, dump)
            print(out.rstrip())
            if rc != 0:
                fail(f'payload-check rejected a real dump (exit {rc})')

            page = corrupt_copy(dump, bad)
            rc, out = run_check(checker, bad)
            if rc != 1:
                fail(f'payload-check accepted a dump with page {page} changed '
                     f'(exit {rc}): {out.strip()}')
            print(f'corrupted copy (page {page}) rejected as expected:')
            print('  ' + out.strip().replace('\n', '\n  '))

            # The guest carries on after the pause with its registers intact.
            hmp.command('cont')
            wait_progress(lines, log, 2, 'PROGRESS after cont')
            hmp.send('quit')
            proc.wait(timeout=10)
        except SystemExit:
            print('serial log:\n  ' + '\n  '.join(log[-20:]))
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    print('PASS')
    return 0


if __name__ == '__main__':
    sys.exit(main())
