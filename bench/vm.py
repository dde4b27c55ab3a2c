# SPDX-License-Identifier: GPL-2.0-or-later
"""Starting frostvm and QEMU with the same guest, watching their serial logs and /proc."""
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts'))
from frostvm_qmp import QMP, QMPError, kvm_usable, parse_kv  # noqa: E402,F401 (bench/run's kvm_usable)
import hugepages  # noqa: E402
from hugepages import release_huge_pages  # noqa: E402,F401 (bench/run's)

CLK_TCK = os.sysconf('SC_CLK_TCK')


class BenchError(Exception):
    """A run that cannot produce a figure; the message becomes "failed: ..." in the table."""


class Guest:
    """What the VM looks like: RAM, vCPUs and the payload's command line."""

    def __init__(self, name, ram_mib, append, smp=1, idle=False, backend=None):
        self.name = name
        self.ram_mib = ram_mib
        self.append = append
        self.smp = smp
        self.idle = idle
        # None: the VMM's default anonymous RAM; 'memfd': shared memory (shmem), as
        # vhost-user and virtiofs set-ups give their guests; 'memfd-hugetlb': shared
        # 2 MiB hugetlb pages (reserved by reserve_huge_pages()).
        self.backend = backend
        # The payload's report interval (its default is 100 ms).
        self.report_ms = int(parse_kv(append).get('report_ms', 100))

    def describe(self):
        ram = f', RAM on memory-backend-{self.backend}' if self.backend else ''
        return f"-m {self.ram_mib} -smp {self.smp}{ram}, payload `{self.append}`"

    def backend_argv(self):
        """The same options for both VMMs: QEMU merges a second -machine into the first."""
        if self.backend is None:
            return []
        kind, _, huge = self.backend.partition('-')
        extra = ',hugetlb=on' if huge == 'hugetlb' else ''
        return ['-object', f'memory-backend-{kind},id=ram0,size={self.ram_mib}M,share=on{extra}',
                '-machine', 'memory-backend=ram0']

    def huge_pages(self):
        """2 MiB huge pages the guest's RAM needs reserved (0 without hugetlb)."""
        return self.ram_mib // 2 if self.backend == 'memfd-hugetlb' else 0


def reserve_huge_pages(n):
    """scripts/hugepages.py's, failing as a BenchError (the runs then say why)."""
    try:
        return hugepages.reserve_huge_pages(n)
    except hugepages.HugePagesError as e:
        raise BenchError(str(e))


# The two ways the benchmark runs. With KVM both VMMs run the payload on it; without,
# QEMU runs it under TCG and frostvm's test accelerator writes guest RAM the same way
# from host threads, so the snapshot machinery is compared, not the guests' speeds.
MODES = {
    'kvm': {'qemu': ['-enable-kvm', '-machine', 'pc'], 'frostvm': ['-accel', 'kvm'],
            'title': 'with KVM (QEMU `-enable-kvm -machine pc`, frostvm `-accel kvm`)'},
    'no-kvm': {'qemu': ['-accel', 'tcg', '-machine', 'pc'], 'frostvm': ['-accel', 'test'],
               'title': 'without KVM (QEMU `-accel tcg -machine pc`, frostvm `-accel test`)'},
}


class Vmm:
    """One of the two monitors under test and how to start it in a mode (MODES)."""

    def __init__(self, name, binary, payload, mode='kvm'):
        self.name = name
        self.binary = binary
        self.payload = payload
        self.mode = mode

    def argv(self, guest, serial, qmp, incoming=None):
        common = ['-m', str(guest.ram_mib), '-smp', str(guest.smp), '-display', 'none',
                  '-serial', f'file:{serial}', '-qmp', f'unix:{qmp},server=on,wait=off',
                  '-kernel', self.payload, '-append', guest.append] + guest.backend_argv()
        accel = MODES[self.mode][self.name]
        if self.name == 'qemu':
            # debug-threads names the vCPU thread "CPU 0/KVM" (or /TCG) so its CPU time can
            # be told apart from the monitor's; it changes nothing the guest sees.
            argv = [self.binary] + accel + ['-name', 'bench,debug-threads=on'] + common
        else:
            argv = [self.binary] + accel + common
        if incoming:
            argv += ['-incoming', incoming]
        return argv


class SerialLog(threading.Thread):
    """Tails a serial log file and stamps every complete line with the monotonic clock."""

    POLL_S = 0.004

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.lines = []          # (monotonic seconds when seen, text)
        self.cond = threading.Condition()
        self.stopping = False

    def run(self):
        pos = 0
        partial = b''
        while not self.stopping:
            try:
                with open(self.path, 'rb') as f:
                    f.seek(pos)
                    data = f.read()
            except FileNotFoundError:
                data = b''
            if data:
                now = time.monotonic()
                pos += len(data)
                parts = (partial + data).split(b'\n')
                partial = parts.pop()
                with self.cond:
                    for raw in parts:
                        self.lines.append((now, raw.decode(errors='replace').rstrip('\r')))
                    self.cond.notify_all()
            time.sleep(self.POLL_S)

    def stop(self):
        self.stopping = True

    def wait_for(self, pred, timeout, start=0, proc=None):
        """Index and entry of the first line at or after index start matching pred."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i][1]):
                        return i, self.lines[i]
                    i += 1
                if proc is not None and proc.poll() is not None:
                    raise BenchError(f'VM exited with status {proc.returncode}')
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError('timed out waiting for the guest')
                self.cond.wait(min(left, 0.1))

    def progress(self, start=0):
        """PROGRESS lines from index start as dicts (wall, t_us, rate, maxstall_us, ...)."""
        out = []
        with self.cond:
            snapshot = self.lines[start:]
        for wall, text in snapshot:
            if text.startswith('PROGRESS '):
                kv = parse_kv(text)
                try:
                    out.append({'wall': wall, 't_us': int(kv['t_us']), 'rate': int(kv['rate']),
                                'maxstall_us': int(kv['maxstall_us']), 'steps': int(kv['steps']),
                                'regs': kv.get('regs'), 'errors': int(kv.get('errors', 0)),
                                'text': text})
                except (KeyError, ValueError):
                    continue
        return out

    def bad_lines(self, start=0):
        with self.cond:
            snapshot = self.lines[start:]
        return [t for _, t in snapshot
                if t.startswith(('MISMATCH', 'FAIL', 'FAULT', 'PAYLOAD ERROR'))
                or (t.startswith('PROGRESS') and ('regs=FAIL' in t or ' errors=0' not in t))]


def is_vcpu_thread(comm):
    """frostvm's vCPU threads (vcpuN, or test-vcpuN under -accel test) and QEMU's."""
    return comm.startswith(('vcpu', 'test-vcpu')) or bool(re.match(r'CPU \d+/(KVM|TCG)', comm))


def read_cpu(pid):
    """(process CPU seconds from utime+stime, {tid: vCPU thread CPU seconds})."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    vcpus = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/comm') as f:
                comm = f.read().strip()
            if not is_vcpu_thread(comm):
                continue
            with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
                vcpus[tid] = int(f.read().split()[0]) / 1e9
        except OSError:
            continue
    return total, vcpus


def read_host_steal_ms():
    """Time the host took from this machine's CPUs so far (steal in /proc/stat, all CPUs,
    in ticks of 10 ms): on a machine that is itself a guest, stalls no thread here explains
    (bench/host-steal.py shows them beside free page reports)."""
    with open('/proc/stat') as f:
        fields = f.readline().split()
    return int(fields[8]) * 1000 // CLK_TCK if len(fields) > 8 else 0


class HarnessPlacement:
    """Keeps this process's threads (the QMP loop, the serial reader, the samplers) off the
    CPUs the VM's vCPU threads are on while a run lasts, for either VMM alike.

    At normal priority, and at nice 19 too, a Python thread woken on a vCPU's CPU held it
    until the next tick: KVM vCPUs preempted by python3 for 0.5-5.4 ms during snapshots
    (bpftrace, sched_switch), one of them the worst stall of a bg-2g snapshot. The vCPU
    threads are never moved; where they fill every CPU this process may use, nothing is.
    Threads started during the run inherit the narrowing from the thread that starts them.
    """

    def __init__(self, pid):
        self.saved = {}
        self.active = False
        mine = os.sched_getaffinity(0)
        spare = set(mine)
        for tid in os.listdir(f'/proc/{pid}/task'):
            try:
                with open(f'/proc/{pid}/task/{tid}/comm') as f:
                    if not is_vcpu_thread(f.read().strip()):
                        continue
                own = os.sched_getaffinity(int(tid))
                if len(own) < len(mine):
                    spare -= own          # pinned: every CPU it may use
                else:
                    with open(f'/proc/{pid}/task/{tid}/stat') as f:
                        spare.discard(int(f.read().rsplit(')', 1)[1].split()[36]))
            except (OSError, ValueError, IndexError):
                continue
        if not spare or spare == mine:
            return
        for tid in os.listdir('/proc/self/task'):
            try:
                self.saved[int(tid)] = os.sched_getaffinity(int(tid))
                os.sched_setaffinity(int(tid), spare)
            except OSError:
                self.saved.pop(int(tid), None)
        self.active = bool(self.saved)

    def restore(self):
        for tid, cpus in self.saved.items():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass        # the thread ended
        self.saved = {}


def read_status_kib(pid, key):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples VmRSS every 10 ms while a snapshot runs; peak is in KiB."""

    def __init__(self, pid, period=0.01):
        super().__init__(daemon=True)
        self.pid = pid
        self.period = period
        self.peak = 0
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                self.peak = max(self.peak, read_status_kib(self.pid, 'VmRSS'))
            except OSError:
                return
            time.sleep(self.period)

    def stop(self):
        self.stopping = True
        self.join()
        try:
            self.peak = max(self.peak, read_status_kib(self.pid, 'VmRSS'))
        except OSError:
            pass
        return self.peak


class ThreadCpuSampler(threading.Thread):
    """Samples every thread's CPU time (schedstat, ns) every 5 ms while a run lasts.

    Migration threads come and go with each run, so their time must be read while they
    exist: the last sample of a thread is its time (at most one period short).

    The sampler must not take the guest's CPU: at normal priority, opening two files per
    thread every 5 ms made the vCPU wait 0.3-0.6 ms behind it about every 5 ms (bpftrace,
    sched_switch), the largest cause of frostvm's stalls of 0.3 ms or more with KVM. It
    runs at nice 19 and keeps each thread's schedstat open.
    """

    def __init__(self, pid, period=0.005):
        super().__init__(daemon=True)
        self.pid = pid
        self.period = period
        self.first = {}      # tid -> ns at the first sample (threads present at the start)
        self.last = {}       # tid -> (comm, ns)
        self.files = {}      # tid -> (descriptor of its comm, of its schedstat)
        self.stopping = False
        self._sample(initial=True)

    def _open(self, tid):
        try:
            comm_fd = os.open(f'/proc/{self.pid}/task/{tid}/comm', os.O_RDONLY)
        except OSError:
            return None
        try:
            stat_fd = os.open(f'/proc/{self.pid}/task/{tid}/schedstat', os.O_RDONLY)
        except OSError:
            os.close(comm_fd)
            return None
        self.files[tid] = (comm_fd, stat_fd)
        return self.files[tid]

    def _close(self, tid):
        for fd in self.files.pop(tid):
            os.close(fd)

    @staticmethod
    def _read(fds):
        """(name, ns) of a thread; the name is read each time: a thread may rename itself
        after it starts (QEMU's migration threads do)."""
        try:
            comm = os.pread(fds[0], 64, 0).decode(errors='replace').strip()
            return comm, int(os.pread(fds[1], 128, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self, initial=False):
        try:
            tids = os.listdir(f'/proc/{self.pid}/task')
        except OSError:
            return
        for tid in tids:
            fds = self.files.get(tid) or self._open(tid)
            if fds is None:
                continue
            got = self._read(fds)
            if got is None:
                # The thread ended; its id may now be another's: open it again.
                self._close(tid)
                fds = self._open(tid)
                got = self._read(fds) if fds else None
                if got is None:
                    continue
            comm, ns = got
            if initial:
                self.first[tid] = ns
            self.last[tid] = (comm, ns)

    def run(self):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass
        while not self.stopping:
            time.sleep(self.period)
            self._sample()

    def stop(self):
        """{thread name: CPU ms used during the run}, names summed over threads."""
        self.stopping = True
        self.join()
        self._sample()
        for tid in list(self.files):
            self._close(tid)
        out = {}
        for tid, (comm, ns) in self.last.items():
            used = (ns - self.first.get(tid, 0)) / 1e6
            if used > 0:
                out[comm] = out.get(comm, 0.0) + used
        return out


# Threads that do the copying: frostvm's migration thread and its snapshot helpers, QEMU's
# migration thread (live_migration; bg_snapshot for a background snapshot).
MIGRATION_THREADS = ('migration', 'snapshot-', 'live_migration', 'bg_snapshot')


def is_migration_thread(comm):
    return comm.startswith(MIGRATION_THREADS)


class Vm:
    """A running VM: process, QMP connection, serial log."""

    def __init__(self, vmm, guest, workdir, tag, incoming=None):
        self.vmm = vmm
        self.guest = guest
        self.serial_path = os.path.join(workdir, f'{tag}.serial.log')
        self.qmp_path = os.path.join(workdir, f'{tag}.qmp.sock')
        self.log_path = os.path.join(workdir, f'{tag}.stderr.log')
        for p in (self.serial_path, self.qmp_path):
            if os.path.exists(p):
                os.unlink(p)
        self.argv = vmm.argv(guest, self.serial_path, self.qmp_path, incoming)
        self.serial = SerialLog(self.serial_path)
        self.qmp = None
        self.log = open(self.log_path, 'wb')
        self.t_spawn = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        self.serial.start()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def connect(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.qmp_path):
            if not self.alive():
                raise BenchError(f'{self.vmm.name} exited with status {self.proc.returncode}: '
                                 f'{self.stderr_tail()}')
            if time.monotonic() > deadline:
                raise BenchError('QMP socket did not appear')
            time.sleep(0.002)
        try:
            self.qmp = QMP(self.qmp_path, timeout=timeout)
        except (OSError, QMPError) as e:
            raise BenchError(f'QMP connection failed: {e}')
        return self.qmp

    def wait_ready(self, timeout):
        """Waits for PAYLOAD READY (the end of the first, slow, sweep)."""
        self.serial.wait_for(lambda t: t.startswith('PAYLOAD READY'), timeout, proc=self.proc)

    def stderr_tail(self, n=300):
        try:
            with open(self.log_path, 'rb') as f:
                data = f.read()
            return data[-n:].decode(errors='replace').strip().replace('\n', ' | ')
        except OSError:
            return ''

    def stop(self):
        if self.qmp is not None:
            try:
                self.qmp.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.serial.stop()
        self.serial.join(1)
        self.log.close()
