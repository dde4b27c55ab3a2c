#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The fault campaign (`make soak`): real frostvm processes, faults at random moments.

Classes: cancels of background snapshots, sinks that die mid-snapshot, SIGKILL
during file: snapshots and precopy, restores from truncated or corrupted images,
page-aligned images truncated or rewritten under a map-mode clone, hostile QMP
input. After each try: the guest's invariant (its PROGRESS reports,
and payload-check on every complete image), the guest running (never left
paused or write-protected), the process's descriptors, threads, RSS and
children against a baseline, and the files left. Prints tried/failed per class
and exits non-zero on any failure. Bounded: a few minutes at --scale 1.
"""
import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_hostile import RawClient, big_inputs, hostile_inputs  # noqa: E402
from frostvm_qmp import kvm_usable  # noqa: E402
from soak_vm import SoakVM  # noqa: E402

MIB = 1 << 20
# A snapshot or precopy slowed to this rate takes seconds, so a fault lands mid-stream.
SLOW_BPS = 8 * MIB
# RSS may wander this much above the baseline (page cache of the image is not RSS).
RSS_SLACK_KIB = 48 * 1024


class Campaign:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.build = os.path.abspath(args.build)
        self.accel = args.accel if args.accel != 'auto' else ('kvm' if kvm_usable() else 'test')
        self.work = tempfile.mkdtemp(prefix='frostvm-soak-', dir=args.workdir)
        self.results = {}
        self.failures = []
        self.vm_seq = 0

    # ---- bookkeeping ----

    def record(self, cls, problems):
        tried, failed = self.results.get(cls, (0, 0))
        self.results[cls] = (tried + 1, failed + (1 if problems else 0))
        for p in problems:
            self.failures.append(f'{cls} #{tried + 1}: {p}')
            print(f'  FAIL {cls} #{tried + 1}: {p}', flush=True)

    def new_vm(self, tag, **kw):
        self.vm_seq += 1
        return SoakVM(self.build, self.accel, self.work, f'{tag}-{self.vm_seq}', **kw)

    def count(self, n):
        return max(1, int(n * self.args.scale))

    # ---- shared checks ----

    def check_guest_runs(self, vm, start):
        """The guest runs on after the fault: status running, a new report, invariant kept."""
        problems = []
        status = vm.qmp.cmd('query-status').get('status')
        if status != 'running':
            problems.append(f'guest left {status}')
        if vm.wait_progress(vm.serial_size() if start is None else start) is None:
            problems.append('the guest made no progress after the fault')
        problems += [f'guest reports: {l}' for l in vm.guest_errors()[:3]]
        return problems

    def check_resources(self, vm, base):
        """Descriptors and threads back to the baseline, no children, RSS bounded."""
        deadline = time.monotonic() + 5
        while True:
            now = vm.resources()
            if ((now['fds'] == base['fds'] and now['threads'] == base['threads']
                 and now['children'] == 0) or time.monotonic() > deadline):
                break
            time.sleep(0.05)
        problems = []
        for key in ('fds', 'threads'):
            if now[key] != base[key]:
                problems.append(f'{key}: {now[key]} after, {base[key]} at the baseline')
        if now['children']:
            problems.append(f'{now["children"]} child process(es) left')
        if now['rss_kib'] > base['rss_kib'] + RSS_SLACK_KIB:
            problems.append(f'RSS {now["rss_kib"]} KiB, baseline {base["rss_kib"]} KiB')
        return problems

    def leftovers(self, folder, name):
        return sorted(e for e in os.listdir(folder) if e.startswith(name))

    def check_image(self, path):
        """A complete image: frostvm-img check, then the payload's invariant in its RAM."""
        img = os.path.join(self.build, 'frostvm-img')
        r = subprocess.run([img, 'check', path], capture_output=True, text=True)
        if r.returncode != 0:
            return [f'frostvm-img check: {r.stdout.strip()} {r.stderr.strip()}']
        raw = path + '.raw'
        r = subprocess.run([img, 'dump-ram', path, raw], capture_output=True, text=True)
        if r.returncode != 0:
            return [f'frostvm-img dump-ram: {r.stderr.strip()}']
        r = subprocess.run([os.path.join(self.build, 'tests/guest/payload-check'), raw],
                           capture_output=True, text=True)
        os.unlink(raw)
        if r.returncode != 0:
            return [f'payload-check: {r.stdout.strip()[-300:]}']
        return []

    def snapshot_vm(self, tag):
        vm = self.new_vm(tag).start()
        vm.qmp.cmd('migrate-set-capabilities',
                   capabilities=[{'capability': 'background-snapshot', 'state': True}])
        if vm.wait_progress(0) is None:
            raise RuntimeError(f'{tag}: the guest never reported; log:\n{vm.log()[-2000:]}')
        return vm

    def warm_up(self, vm):
        """One complete snapshot first, so pools and threads that stay are in the baseline."""
        path = os.path.join(vm.dir, 'warmup.img')
        vm.qmp.cmd('migrate', uri=f'file:{path}')
        info = vm.migration_end()
        if info['status'] != 'completed':
            raise RuntimeError(f'warm-up snapshot: {info}')
        os.unlink(path)
        time.sleep(0.2)
        return vm.resources()

    # ---- the classes ----

    def run_cancels(self):
        vm = self.snapshot_vm('cancel')
        base = self.warm_up(vm)
        try:
            for _ in range(self.count(40)):
                path = os.path.join(vm.dir, 'cancel.img')
                bw = self.rng.choice([SLOW_BPS, 4 * SLOW_BPS, 0])
                vm.qmp.cmd('migrate-set-parameters', **{'max-bandwidth': bw})
                start = vm.serial_size()
                vm.qmp.cmd('migrate', uri=f'file:{path}')
                time.sleep(self.rng.uniform(0, 1.5))
                vm.qmp.cmd_raw('migrate_cancel')
                info = vm.migration_end()
                problems = []
                if info['status'] == 'cancelled':
                    if self.leftovers(vm.dir, 'cancel.img'):
                        problems.append(f'cancelled, but left {self.leftovers(vm.dir, "cancel")}')
                elif info['status'] == 'completed':
                    problems += self.check_image(path)
                else:
                    problems.append(f'ended {info["status"]}: {info.get("error-desc")}')
                if os.path.exists(path):
                    os.unlink(path)
                problems += self.check_guest_runs(vm, start)
                problems += self.check_resources(vm, base)
                self.record('cancel', problems)
        finally:
            vm.stop()

    def dying_unix_sink(self, path, limit):
        """A unix: sink that reads limit bytes, then hangs up."""
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)

        def serve():
            conn, _ = srv.accept()
            got = 0
            while got < limit:
                data = conn.recv(min(65536, limit - got))
                if not data:
                    break
                got += len(data)
            conn.close()
            srv.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        return t

    def run_dying_sinks(self):
        vm = self.snapshot_vm('sink')
        base = self.warm_up(vm)
        try:
            for i in range(self.count(30)):
                limit = self.rng.randrange(0, 8 * MIB)
                start = vm.serial_size()
                thread = None
                if i % 2:
                    sock = os.path.join(vm.dir, 'sink.sock')
                    if os.path.exists(sock):
                        os.unlink(sock)
                    thread = self.dying_unix_sink(sock, limit)
                    uri = f'unix:{sock}'
                else:
                    uri = f'exec:head -c {limit} > /dev/null'
                vm.qmp.cmd('migrate', uri=uri)
                info = vm.migration_end()
                problems = []
                if info['status'] != 'failed':
                    problems.append(f'a sink that died after {limit} bytes: {info["status"]}')
                elif not info.get('error-desc'):
                    problems.append('failed without saying why')
                if thread is not None:
                    thread.join(10)
                problems += self.check_guest_runs(vm, start)
                problems += self.check_resources(vm, base)
                self.record('dying-sink', problems)
        finally:
            vm.stop()

    def run_sigkills(self):
        for i in range(self.count(20)):
            vm = self.new_vm('kill').start()
            problems = []
            try:
                if vm.wait_progress(0) is None:
                    raise RuntimeError('the guest never reported')
                if i % 4 != 3:   # most are background snapshots, some precopy
                    vm.qmp.cmd('migrate-set-capabilities', capabilities=[
                        {'capability': 'background-snapshot', 'state': True}])
                vm.qmp.cmd('migrate-set-parameters', **{'max-bandwidth': SLOW_BPS})
                vm.qmp.cmd('migrate', uri=f'file:{os.path.join(vm.dir, "kill.img")}')
                time.sleep(self.rng.uniform(0, 2.0))
                vm.kill()
                left = self.leftovers(vm.dir, 'kill.img')
                if left == ['kill.img']:
                    # It completed before the kill: then it must be whole.
                    problems += self.check_image(os.path.join(vm.dir, 'kill.img'))
                elif left:
                    problems.append(f'SIGKILL left {left}')
            except Exception as e:  # noqa: BLE001 - any surprise is a failed try
                problems.append(f'{type(e).__name__}: {e}')
            finally:
                vm.kill()
            self.record('sigkill-file', problems)
            shutil.rmtree(vm.dir, ignore_errors=True)

    def good_image(self):
        vm = self.snapshot_vm('source')
        path = os.path.join(self.work, 'good.img')
        try:
            vm.qmp.cmd('migrate', uri=f'file:{path}')
            info = vm.migration_end()
            if info['status'] != 'completed':
                raise RuntimeError(f'the source snapshot: {info}')
            problems = self.check_image(path)
            if problems:
                raise RuntimeError(f'the source image: {problems}')
        finally:
            vm.stop()
        with open(path, 'rb') as f:
            return path, f.read()

    def run_restores(self):
        path, data = self.good_image()
        bad = os.path.join(self.work, 'bad.img')
        for i in range(self.count(60)):
            problems = []
            intact = i % 6 == 5
            if intact:
                image = path
            else:
                cut = bytearray(data)
                if i % 2:
                    cut = cut[:self.rng.randrange(len(cut))]
                else:
                    for _ in range(self.rng.randrange(1, 5)):
                        cut[self.rng.randrange(len(cut))] ^= 1 << self.rng.randrange(8)
                with open(bad, 'wb') as f:
                    f.write(cut)
                image = bad
            vm = self.new_vm('restore', extra=['-incoming', f'file:{image}'])
            vm.start(qmp=False)
            try:
                if intact:
                    if vm.wait_progress(0, timeout=30) is None:
                        problems.append(f'the intact image did not run; log: {vm.log()[-500:]}')
                    problems += [f'restored guest: {l}' for l in vm.guest_errors()[:3]]
                else:
                    status = vm.wait_exit(30)
                    log = vm.log()
                    if status is None:
                        problems.append('a bad image: still running after 30 s')
                    elif status != 1 or 'load of migration failed' not in log:
                        problems.append(f'a bad image: exit {status}, log: {log[-300:]}')
                    if vm.serial_size():
                        problems.append('the guest ran from a bad image')
            finally:
                vm.kill()
            self.record('restore', problems)
            shutil.rmtree(vm.dir, ignore_errors=True)

    def mapped_image(self):
        """A page-aligned image of a running guest (map-mode clones restore it)."""
        vm = self.snapshot_vm('mapped-source')
        path = os.path.join(self.work, 'mapped.img')
        try:
            vm.qmp.cmd('migrate-set-capabilities',
                       capabilities=[{'capability': 'mapped-ram', 'state': True}])
            vm.qmp.cmd('migrate', uri=f'file:{path}')
            info = vm.migration_end()
            if info['status'] != 'completed':
                raise RuntimeError(f'the page-aligned source snapshot: {info}')
        finally:
            vm.stop()
        return path

    def change_image(self, image, truncate):
        """Truncate @image at a random length, or rewrite it as cp would; returns the wait."""
        t0 = time.monotonic()
        if truncate:
            os.truncate(image, self.rng.randrange(os.path.getsize(image)))
        else:
            with open(image, 'wb') as f:
                f.write(os.urandom(64 * 1024))
        return time.monotonic() - t0

    def run_map_changed(self):
        """
        A map-mode clone's image truncated or rewritten at a random moment: once it
        runs, the guest goes on; during the start, the load may fail instead, cleanly.
        """
        source = self.mapped_image()
        outcomes = {'refused at load': 0, 'detached during the start': 0,
                    'detached while running': 0}
        for i in range(self.count(16)):
            image = os.path.join(self.work, 'clone.img')
            shutil.copyfile(source, image)
            vm = self.new_vm('map-clone', extra=['-global', 'migration.restore-mode=map',
                                                 '-incoming', f'file:{image}'])
            problems = []
            early = i % 4 >= 2
            try:
                vm.start(connect=not early)
                if early:
                    # While frostvm opens, checks and maps the image, or just after.
                    time.sleep(self.rng.uniform(0, 0.15))
                elif vm.wait_progress(0, timeout=30) is None:
                    problems.append(f'the clone never ran; log: {vm.log()[-500:]}')
                start = vm.serial_size()
                waited = self.change_image(image, i % 2 == 1)
                if waited > 20:
                    problems.append(f'the change waited {waited:.1f} s')
                status = vm.wait_exit(1) if early else None
                if status is not None:
                    # The change came before the image was leased: a clean refusal.
                    if status != 1 or 'load of migration failed' not in vm.log():
                        problems.append(f'exit {status}, log: {vm.log()[-300:]}')
                    if vm.serial_size():
                        problems.append('the guest ran from the changed image')
                    outcomes['refused at load'] += 1
                else:
                    if early:
                        vm.connect_qmp()
                    lease = vm.qmp.cmd('query-migrate').get('restore', {}).get('image-lease')
                    if lease != 'detached':
                        problems.append(f'image-lease {lease} after the change')
                    problems += self.check_guest_runs(vm, start)
                    outcomes['detached during the start' if early else
                             'detached while running'] += 1
            finally:
                vm.kill()
            self.record('map-changed', problems)
            shutil.rmtree(vm.dir, ignore_errors=True)
            os.unlink(image)
        print('  ' + ', '.join(f'{n} {k}' for k, n in outcomes.items()), flush=True)

    def run_hostile(self):
        vm = self.snapshot_vm('hostile')
        time.sleep(0.2)
        base = vm.resources()
        inputs = hostile_inputs(self.rng, self.count(800))
        client = RawClient(vm.sock)
        try:
            for n, data in enumerate(inputs + big_inputs()):
                problems = []
                try:
                    problems, answered = client.exchange(data)
                    if not answered:
                        # The probe went into an unterminated text; start a new session.
                        client.close()
                        client = RawClient(vm.sock)
                        more, answered = client.exchange(b'')
                        problems += more
                        if not answered:
                            problems.append('a new connection got no answer')
                except (OSError, ValueError, RuntimeError) as e:
                    problems.append(f'{type(e).__name__}: {e} after {data[:80]!r}')
                    if not vm.alive():
                        problems.append(f'frostvm died: {vm.log()[-500:]}')
                        self.record('hostile-qmp', problems)
                        break
                    client = RawClient(vm.sock)
                if problems:
                    problems.append(f'input: {data[:120]!r}')
                self.record('hostile-qmp', problems)
                if n % 200 == 199:
                    # This client's connection is the one descriptor above the baseline.
                    start = vm.serial_size()
                    self.record('hostile-qmp', self.check_guest_runs(vm, start) +
                                self.check_resources(vm, dict(base, fds=base['fds'] + 1)))
            client.close()
            # A client that vanishes mid-text, and one that never speaks.
            for partial in (b'{"execute": "query-st', b''):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(vm.sock)
                s.sendall(partial)
                s.close()
            time.sleep(0.3)
            self.record('hostile-qmp', self.check_guest_runs(vm, None) +
                        self.check_resources(vm, base))
        finally:
            vm.stop()

    def run(self):
        classes = [('cancel', self.run_cancels), ('dying-sink', self.run_dying_sinks),
                   ('sigkill-file', self.run_sigkills), ('restore', self.run_restores),
                   ('map-changed', self.run_map_changed), ('hostile-qmp', self.run_hostile)]
        t0 = time.monotonic()
        print(f'soak: accel={self.accel} seed={self.args.seed} scale={self.args.scale} '
              f'work={self.work}', flush=True)
        for name, fn in classes:
            if self.args.only and name not in self.args.only:
                continue
            c0 = time.monotonic()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - a class that cannot run has failed
                self.record(name, [f'could not run: {type(e).__name__}: {e}'])
            tried, failed = self.results.get(name, (0, 0))
            print(f'{name:14s} tried {tried:5d}  failed {failed:3d}  '
                  f'({time.monotonic() - c0:.0f} s)', flush=True)
        total_failed = sum(f for _, f in self.results.values())
        print(f'soak: {sum(t for t, _ in self.results.values())} tried, {total_failed} failed, '
              f'{time.monotonic() - t0:.0f} s on {self.accel}')
        if not self.args.keep and not total_failed:
            shutil.rmtree(self.work, ignore_errors=True)
        return 1 if total_failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build')
    ap.add_argument('--accel', default='auto', choices=['auto', 'kvm', 'test'])
    ap.add_argument('--seed', type=int, default=int(time.time()))
    ap.add_argument('--scale', type=float, default=1.0, help='multiply every try count')
    ap.add_argument('--only', nargs='*', help='run only these classes')
    ap.add_argument('--workdir', default=None, help='where the VMs write (default: TMPDIR)')
    ap.add_argument('--keep', action='store_true', help='keep the work folder')
    return Campaign(ap.parse_args()).run()


if __name__ == '__main__':
    sys.exit(main())
