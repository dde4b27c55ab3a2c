# SPDX-License-Identifier: GPL-2.0-or-later
"""One measured run: a snapshot or migration of a running VM, or a restore from an image."""
import json
import os
import subprocess
import time

from metrics import after_figures, guest_clock_offset, line_stall_ms, window_figures
from vm import (BenchError, HarnessPlacement, QMPError, RssSampler, ThreadCpuSampler, Vm,
                is_migration_thread, read_cpu, read_host_steal_ms, read_status_kib)

TERMINAL = ('completed', 'failed', 'cancelled')
MAX_BANDWIDTH = 4294967296   # QEMU 7.2 throttles migration to 32 MiB/s by default
THROTTLE_POLL_S = 0.1        # query-migrate while auto-converge may throttle
QMP_REPLY_S = 30.0           # how long a reply may take (the QMP client's default)


class Job:
    """What to run on a booted VM: kind is bg (background snapshot), precopy (live
    migration) or smc (stop, migrate, cont); sink is tmpfs, disk, or a pv rate (100m)
    through `exec:`, or file-tmpfs / file-disk for a `file:` URI (frostvm only).
    params are frostvm's own migrate-set-parameters; caps are capabilities set for both
    VMMs (e.g. {'auto-converge': True}), off again for a later job that does not name them."""

    def __init__(self, scenario, kind, sink, reps=3, bound_s=None, params=None,
                 vmms=('frostvm', 'qemu'), keep_image=False, after_s=0, caps=None):
        self.after_s = after_s      # watch the guest this long after the end (huge pages, rate)
        self.scenario = scenario
        self.kind = kind
        self.sink = sink
        self.reps = reps
        self.bound_s = bound_s
        self.params = params or {}
        self.vmms = vmms
        self.keep_image = keep_image
        self.caps = caps or {}

    def polls_throttle(self):
        """Whether query-migrate is polled during the run for cpu-throttle-percentage."""
        return bool(self.caps.get('auto-converge'))


class Context:
    """Where things go and which helper programs exist."""

    def __init__(self, workdir, tmpfs_dir, disk_dir, frostvm_img, payload_check, gap_s):
        self.workdir = workdir
        self.tmpfs_dir = tmpfs_dir
        self.disk_dir = disk_dir
        self.frostvm_img = frostvm_img
        self.payload_check = payload_check
        self.gap_s = gap_s


def sink_uri(sink, path):
    if sink.startswith('file-'):
        return f'file:{path}'
    if sink in ('tmpfs', 'disk'):
        return f'exec:cat > {path}'
    return f'exec:pv -q -L {sink} > {path}'


def image_path(ctx, job, vmm, rep):
    base = ctx.disk_dir if job.sink in ('disk', 'file-disk') else ctx.tmpfs_dir
    return os.path.join(base, f'{job.scenario}-{vmm}-{rep}.img')


def wait_file_stable(path, timeout=30.0, still_s=0.25):
    """Waits until the sink process has written its last byte (size unchanged for still_s)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = os.path.getsize(path) if os.path.exists(path) else -1
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= still_s:
            return size
        time.sleep(0.02)
    return last


def event_wall(e):
    ts = e.get('timestamp', {})
    return ts.get('seconds', 0) + ts.get('microseconds', 0) / 1e6


def pause_from_events(events):
    """Milliseconds between the first STOP and the next RESUME event, or None."""
    stop = next((e for e in events if e['event'] == 'STOP'), None)
    if stop is None:
        return None
    resume = next((e for e in events if e['event'] == 'RESUME'
                   and event_wall(e) >= event_wall(stop)), None)
    if resume is None:
        return None
    return (event_wall(resume) - event_wall(stop)) * 1000


def image_info(ctx, path):
    """frostvm-img info and check on a frostvm image: (data pages or None, check error or None)."""
    if not ctx.frostvm_img:
        return None, None
    r = subprocess.run([ctx.frostvm_img, '--output=json', 'info', path],
                       capture_output=True, text=True)
    pages = None
    if r.returncode == 0:
        try:
            pages = json.loads(r.stdout).get('data-pages')
        except ValueError:
            pass
    c = subprocess.run([ctx.frostvm_img, 'check', path], capture_output=True, text=True)
    err = None
    if c.returncode != 0:
        err = 'frostvm-img check: ' + (c.stderr or c.stdout).strip().splitlines()[-1][:120]
    return pages, err


def guest_ram_thp_kib(pid, ram_mib):
    """(AnonHugePages, Rss) in KiB of the VMM's guest RAM: the smallest mapping at least
    as large as guest RAM (QEMU's TCG translation buffer is larger still)."""
    best = None
    cur = None
    with open(f'/proc/{pid}/smaps') as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if not parts[0].endswith(':') and '-' in parts[0]:
                a, b = (int(x, 16) for x in parts[0].split('-'))
                cur = {'size': b - a, 'thp': 0, 'rss': 0}
                if b - a >= ram_mib << 20 and (best is None or cur['size'] < best['size']):
                    best = cur
            elif cur is not None and parts[0] == 'AnonHugePages:':
                cur['thp'] = int(parts[1])
            elif cur is not None and parts[0] == 'Rss:':
                cur['rss'] = int(parts[1])
    return (best['thp'], best['rss']) if best else (0, 0)


def watch_after(vm, t1, after_s):
    """Huge pages of guest RAM right after the end and 1 s and 5 s later (as late as
    after_s allows): [(seconds after the end, AnonHugePages KiB)]."""
    points = [(time.monotonic() - t1, guest_ram_thp_kib(vm.pid, vm.guest.ram_mib)[0])]
    for at in (1.0, 5.0):
        if at > after_s:
            break
        while time.monotonic() < t1 + at:
            time.sleep(0.005)
        points.append((time.monotonic() - t1, guest_ram_thp_kib(vm.pid, vm.guest.ram_mib)[0]))
    while time.monotonic() < t1 + after_s:
        time.sleep(0.02)
    return points


def prepare(vm, job):
    q = vm.qmp
    caps = [{'capability': 'events', 'state': True},
            {'capability': 'background-snapshot', 'state': job.kind == 'bg'}]
    # A capability an earlier job of this VM turned on goes off again: jobs share the VM.
    extra = dict.fromkeys(getattr(vm, 'caps_on', ()), False)
    extra.update(job.caps)
    caps += [{'capability': c, 'state': bool(on)} for c, on in extra.items()]
    q.cmd('migrate-set-capabilities', capabilities=caps)
    vm.caps_on = {c for c, on in extra.items() if on}
    params = {'max-bandwidth': MAX_BANDWIDTH}
    if vm.vmm.name == 'frostvm':
        params.update(job.params)
    q.cmd('migrate-set-parameters', **params)


def wait_gap(vm, gap_s):
    """Lets the guest run undisturbed long enough to measure its rate before the next run."""
    target = vm.quiet_since + gap_s
    while time.monotonic() < target:
        if not vm.alive():
            raise BenchError(f'{vm.vmm.name} exited with status {vm.proc.returncode}')
        time.sleep(0.02)


def final_info(q):
    """query-migrate once the figures are final: QEMU sends the completed event before it
    has computed total-time."""
    deadline = time.monotonic() + 2.0
    while True:
        info = q.cmd('query-migrate')
        if info.get('status') != 'completed' or info.get('total-time') or \
                time.monotonic() > deadline:
            return info
        time.sleep(0.005)


def cont(q):
    """cont after a migration: QEMU refuses it ("Migration is not finalized yet") until its
    migration thread has cleaned up, a few milliseconds after the completed event."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            q.cmd('cont')
            return
        except QMPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def wait_terminal(q, timeout, samples, t0):
    """Waits for the MIGRATION event of a terminal status and returns it. With samples a
    list (not None), polls query-migrate every THROTTLE_POLL_S meanwhile and appends (s
    since migrate, cpu-throttle-percentage or 0, ram.remaining, dirty-sync-count) to it,
    kept when timeout passes and this raises QMPError."""
    pred = lambda e: e['data']['status'] in TERMINAL  # noqa: E731
    if samples is None:
        return q.wait_event('MIGRATION', timeout=timeout, pred=pred)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            q.sock.settimeout(QMP_REPLY_S)    # for the query and cancel that follow
            raise QMPError('timed out waiting for event MIGRATION')
        try:
            return q.wait_event('MIGRATION', timeout=min(left, THROTTLE_POLL_S), pred=pred)
        except QMPError as e:
            if 'timed out' not in str(e):
                raise
        # wait_event left the socket's timeout at what it had left (under 0.1 s): a
        # reply may take longer than that (QEMU under TCG).
        q.sock.settimeout(QMP_REPLY_S)
        samples.append(throttle_sample(q.cmd('query-migrate'), t0))


def throttle_sample(info, t0):
    ram = info.get('ram', {})
    return (round(time.monotonic() - t0, 3), info.get('cpu-throttle-percentage', 0),
            ram.get('remaining'), ram.get('dirty-sync-count'))


def run_migration(vm, job, rep, ctx):
    """Runs one snapshot or migration on a running, READY VM; returns a result dict."""
    res = {'scenario': job.scenario, 'vmm': vm.vmm.name, 'rep': rep, 'kind': job.kind,
           'sink': job.sink, 'ok': False}
    q = vm.qmp
    wait_gap(vm, ctx.gap_s)
    prepare(vm, job)
    path = image_path(ctx, job, vm.vmm.name, rep)
    if os.path.exists(path):
        os.unlink(path)
    uri = sink_uri(job.sink, path)
    serial_mark = len(vm.serial.lines)
    cpu0, vcpu0 = read_cpu(vm.pid)
    steal0 = read_host_steal_ms()
    rss0 = read_status_kib(vm.pid, 'VmRSS')
    hwm0 = read_status_kib(vm.pid, 'VmHWM')
    placement = HarnessPlacement(vm.pid)
    sampler = RssSampler(vm.pid)
    sampler.start()
    threads = ThreadCpuSampler(vm.pid)
    threads.start()
    thp_before = guest_ram_thp_kib(vm.pid, vm.guest.ram_mib) if job.after_s else None
    q.events.clear()
    timeout = job.bound_s or 600
    unconverged = None
    throttle = []
    t0 = time.monotonic()
    try:
        if job.kind == 'smc':
            q.cmd('stop')
        q.cmd('migrate', uri=uri)
        try:
            ev = wait_terminal(q, timeout, throttle if job.polls_throttle() else None, t0)
            status = ev['data']['status']
        except QMPError as e:
            if not job.bound_s or 'timed out' not in str(e):
                raise
            # The figures so far: after the cancel QEMU no longer reports them.
            unconverged = q.cmd('query-migrate')
            if job.polls_throttle():
                throttle.append(throttle_sample(unconverged, t0))
            q.cmd('migrate_cancel')
            q.wait_event('MIGRATION', timeout=60,
                         pred=lambda e: e['data']['status'] in TERMINAL)
            status = 'timeout'
        t1 = time.monotonic()
        info = final_info(q)
        if job.kind == 'smc' or (job.kind == 'precopy' and status == 'completed'):
            cont(q)
            if job.kind == 'smc':
                q.events.append(q.wait_event('RESUME', timeout=30))
                t1 = time.monotonic()
    finally:
        rss_peak = sampler.stop()
        thread_ms = threads.stop()
        placement.restore()
    cpu1, vcpu1 = read_cpu(vm.pid)
    res['host_steal_ms'] = read_host_steal_ms() - steal0
    if job.after_s and status == 'completed':
        res['thp_before_kib'], res['rss_before_kib'] = thp_before
        res['thp_after'] = watch_after(vm, t1, job.after_s)
    hwm1 = read_status_kib(vm.pid, 'VmHWM')
    vm.quiet_since = time.monotonic()
    events = list(q.events)

    res['wall_s'] = t1 - t0
    res['query'] = info
    res['status'] = status
    if job.caps:
        res['caps'] = dict(job.caps)
    if job.polls_throttle():
        # The highest cpu-throttle-percentage query-migrate reported (0: never throttled).
        res['throttle_max_pct'] = max((s[1] for s in throttle), default=0)
        res['throttle_samples'] = throttle
    ram = info.get('ram', {})
    if status == 'timeout':
        res['at_cancel'] = unconverged
        ram = unconverged.get('ram', {})
        res['reason'] = (f'did not converge in {job.bound_s:g} s '
                         f'({ram.get("transferred", 0) / 2**20:.0f} MiB written, '
                         f'{ram.get("dirty-sync-count", "?")} passes'
                         + (f', throttle up to {res["throttle_max_pct"]}%'
                            if job.polls_throttle() else '') + ')')
        res['transferred'] = ram.get('transferred')
    elif status != 'completed':
        res['reason'] = info.get('error-desc') or status
    cpu_vcpu = sum(v - vcpu0.get(t, 0.0) for t, v in vcpu1.items())
    res['cpu_ms'] = (cpu1 - cpu0) * 1000
    res['cpu_vcpu_ms'] = cpu_vcpu * 1000
    res['cpu_other_ms'] = max(0.0, res['cpu_ms'] - res['cpu_vcpu_ms'])
    res['thread_cpu_ms'] = thread_ms
    res['harness_off_vcpus'] = placement.active
    res['cpu_migration_ms'] = sum(v for k, v in thread_ms.items() if is_migration_thread(k))
    # A buffer pool kept from the last snapshot (background-snapshot-buffer-keep) is in
    # the RSS before this one: counted as this snapshot's, as if it were populated anew.
    kept_kib = info.get('background-snapshot', {}).get('buffer-pool-reused', 0) // 1024
    res['rss_delta_mib'] = max(0, rss_peak - rss0 + kept_kib) / 1024
    res['hwm_delta_mib'] = max(0, hwm1 - hwm0 + kept_kib) / 1024
    res['rss_before_mib'] = rss0 / 1024
    res['downtime_ms'] = info.get('downtime')
    # After a completed precopy the VM stays stopped until our cont: not a pause it chose.
    res['pause_ms'] = pause_from_events(events) if job.kind != 'precopy' else None
    if job.kind == 'smc':
        res['downtime_ms'] = res['pause_ms']
    res['total_ms'] = info.get('total-time')
    if 'background-snapshot' in info:
        res['bgs'] = info['background-snapshot']

    # The image.
    if status in ('completed', 'timeout'):
        size = wait_file_stable(path)
        res['image_bytes'] = size if size >= 0 else None
    if status == 'completed':
        if job.kind != 'precopy':
            # Each page is sent once (zero pages as a flag), so the pages sent in full are
            # the non-zero RAM; precopy resends dirty pages, so its rows borrow the figure
            # of a snapshot of the same guest.
            res['nonzero_bytes'] = ram.get('normal', 0) * 4096
            res['nonzero_method'] = 'query-migrate ram.normal'
        if vm.vmm.name == 'frostvm':
            pages, err = image_info(ctx, path)
            if pages is not None and job.kind != 'precopy':
                res['nonzero_bytes'] = pages * 4096
                res['nonzero_method'] = 'frostvm-img data pages'
            if err:
                res['reason'] = err
                status = 'bad-image'
    res['image_path'] = path

    # The guest's view: rates and stalls around the window, and its health.
    # A second of the guest after the run, for the plots (the gap before the next run
    # covers it anyway).
    lines = wait_progress_after(vm, t1 + max(1.0, job.after_s))
    before = [p for p in lines if t0 - 3.0 <= p['wall'] <= t0]
    offset = guest_clock_offset(before or lines)
    if offset is not None and not vm.guest.idle:
        g0, g1 = t0 - offset, t1 - offset
        res.update(window_figures(lines, g0, g1, vm.guest.report_ms))
        res['trace'] = [(p['t_us'] / 1e6 - g0, p['rate'],
                         line_stall_ms(p, prev, vm.guest.report_ms))
                        for prev, p in zip(lines, lines[1:])
                        if g0 - 2.5 <= p['t_us'] / 1e6 <= g1 + max(1.0, job.after_s)]
        if job.after_s:
            res.update(after_figures(lines, g1, job.after_s))
        res['window_s'] = g1 - g0
        if job.kind == 'bg':
            res['dirty_rate_mib_s'] = res.get('rate_before', 0) * 4096 / 2**20
    elif vm.guest.idle:
        res['dirty_rate_mib_s'] = 0.0
    bad = vm.serial.bad_lines(serial_mark)
    if bad:
        res['reason'] = 'guest reported: ' + bad[0][:100]
        status = 'guest-error'
    if not vm.alive():
        res['reason'] = f'{vm.vmm.name} exited with status {vm.proc.returncode}'
        status = 'crashed'
    res['ok'] = status == 'completed'
    if not (job.keep_image and rep == 0 and res['ok']) and os.path.exists(path):
        os.unlink(path)
    return res


def wait_progress_after(vm, t, timeout=5.0):
    """All PROGRESS lines, once one seen after t exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and vm.alive():
        lines = vm.serial.progress()
        if lines and lines[-1]['wall'] > t:
            return lines
        time.sleep(0.02)
    return vm.serial.progress()


def boot(vmm, guest, ctx, tag, ready_timeout):
    vm = Vm(vmm, guest, ctx.workdir, tag)
    try:
        vm.connect()
        vm.wait_ready(ready_timeout)
    except BenchError:
        vm.stop()
        raise
    vm.quiet_since = time.monotonic()
    return vm


def run_restore(vmm, guest, image, ctx, scenario, rep):
    """Starts a VM from image; times process start to running and to the first PROGRESS."""
    res = {'scenario': scenario, 'vmm': vmm.name, 'rep': rep, 'kind': 'restore', 'ok': False}
    tag = f'{scenario}-{vmm.name}-restore{rep}'
    t0 = time.monotonic()
    vm = Vm(vmm, guest, ctx.workdir, tag, incoming=f'exec:cat {image}')
    try:
        q = vm.connect()
        t_run = None
        deadline = time.monotonic() + 120
        while t_run is None:
            st = q.cmd('query-status').get('status')
            if st == 'running':
                t_run = time.monotonic()
                break
            if time.monotonic() > deadline:
                raise BenchError(f'guest not running after 120 s (status {st})')
            time.sleep(0.01)
        res['to_running_s'] = t_run - t0
        i, (wall, text) = vm.serial.wait_for(lambda t: t.startswith('PROGRESS'), 30,
                                             proc=vm.proc)
        res['to_progress_s'] = wall - t0
        vm.serial.wait_for(lambda t: t.startswith('PROGRESS'), 30, start=i + 1, proc=vm.proc)
        bad = vm.serial.bad_lines()
        if bad:
            raise BenchError('restored guest reported: ' + bad[0][:100])
        if ctx.payload_check:
            c = subprocess.run([ctx.payload_check, '--progress', text],
                               capture_output=True, text=True)
            if c.returncode != 0:
                raise BenchError('restored guest checksum: ' + c.stdout.strip()[:100])
        res['ok'] = True
    except (BenchError, QMPError, OSError) as e:
        res['reason'] = str(e) + (f' ({vm.stderr_tail()})' if not vm.alive() else '')
    finally:
        vm.stop()
    return res
