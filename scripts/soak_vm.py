# SPDX-License-Identifier: GPL-2.0-or-later
"""One frostvm process for the soak campaign: start, QMP, the guest's reports, resources.

The guest is the test payload (KVM) or the test accelerator's host threads that
write guest RAM as the payload would (-accel test); both print PROGRESS lines on
the serial port with the payload's own checks (errors=, regs=).
"""
import os
import signal
import subprocess
import time

from frostvm_qmp import QMP, parse_kv, stop_vm


def children_of(pid):
    """Processes whose parent is pid (exec: sinks that were not reaped, for instance)."""
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


class SoakVM:
    def __init__(self, build, accel, workdir, name, append='mem=32M report_ms=50',
                 ram_mb=64, extra=()):
        self.build = build
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, 'qmp.sock')
        self.serial = os.path.join(self.dir, 'serial.log')
        self.log_path = os.path.join(self.dir, 'frostvm.log')
        self.argv = [os.path.join(build, 'frostvm'), '-display', 'none',
                     '-serial', f'file:{self.serial}', '-accel', accel, '-m', str(ram_mb)]
        if accel == 'kvm':
            self.argv += ['-kernel', os.path.join(build, 'tests/guest/payload.elf')]
        self.argv += ['-append', append] + list(extra)
        self.proc = None
        self.qmp = None

    def start(self, qmp=True, timeout=30.0, connect=True):
        argv = list(self.argv)
        if qmp:
            argv += ['-qmp', f'unix:{self.sock},server=on,wait=off']
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log)
        if qmp and connect:
            self.connect_qmp(timeout)
        return self

    def connect_qmp(self, timeout=30.0):
        """Connect to the monitor of a VM started with connect=False."""
        self.qmp = QMP(self.sock, timeout=timeout)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def serial_size(self):
        try:
            return os.path.getsize(self.serial)
        except OSError:
            return 0

    def serial_lines(self, start=0):
        try:
            with open(self.serial, 'rb') as f:
                f.seek(start)
                data = f.read()
        except OSError:
            return []
        return [l.decode(errors='replace') for l in data.split(b'\n')[:-1]]

    def guest_errors(self, start=0):
        """Serial lines that say the guest's memory invariant or registers broke."""
        return [l for l in self.serial_lines(start)
                if l.startswith(('MISMATCH', 'FAIL', 'FAULT', 'PAYLOAD ERROR'))
                or (l.startswith('PROGRESS') and ('regs=ok' not in l or ' errors=0' not in l))]

    def wait_progress(self, start, timeout=20.0):
        """A PROGRESS line written after byte start (the guest runs); None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.serial_lines(start):
                if line.startswith('PROGRESS '):
                    return parse_kv(line)
            if not self.alive():
                return None
            time.sleep(0.02)
        return None

    def resources(self):
        """Open descriptors, threads, resident KiB and child processes right now."""
        pid = self.pid
        rss = 0
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    rss = int(line.split()[1])
        return {'fds': len(os.listdir(f'/proc/{pid}/fd')),
                'threads': len(os.listdir(f'/proc/{pid}/task')),
                'rss_kib': rss, 'children': len(children_of(pid))}

    def migration_end(self, timeout=60.0):
        """Poll query-migrate until the migration is over; its final object."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.qmp.cmd('query-migrate')
            if info.get('status') in ('completed', 'failed', 'cancelled'):
                return info
            time.sleep(0.02)
        return {'status': 'timeout'}

    def kill(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.proc is not None:
            stop_vm(self.proc)
