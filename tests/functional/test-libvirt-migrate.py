#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""virsh migrate --live moves a running frostvm domain between two libvirtds (TAP).

Two private libvirtds run on this machine, each in a mount namespace of its
own over directories of this test, set up as test-libvirt.py sets up its one
(whose code this imports). libvirt refuses to migrate to the host it runs on
by comparing host UUIDs, so each daemon gets its own host_uuid. virsh talks to
both daemons (the plain, not peer-to-peer, protocol) and the stream goes over
TCP on 127.0.0.1. libvirt turns on return-path on both sides and
pause-before-switchover on the source (and late-block-activate on the
destination, when the emulator lists it), then answers pre-switchover with
migrate-continue. The payload's serial reports must go on, from the
destination's pty, past the step count they had reached, with errors=0; the
domain must be gone from the source. Then the domain migrates back with
--auto-converge.

Environment: FROSTVM, FROSTVM_PAYLOAD (paths). Skips, with the reason, where
test-libvirt.py skips: not root, libvirtd or virsh missing, no mount
namespaces, or a libvirtd not answering.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

_spec = importlib.util.spec_from_file_location(
    'test_libvirt', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'test-libvirt.py'))
tl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tl)

DOMAIN = tl.DOMAIN
HOST_UUIDS = {'a': '6c1f0d2e-8a47-4b59-9e3d-2f7a1c5b0a01',
              'b': '6c1f0d2e-8a47-4b59-9e3d-2f7a1c5b0b02'}


class Daemon(tl.Libvirt):
    """test-libvirt.py's private libvirtd, with a host UUID of its own."""

    def __init__(self, root, tap, name):
        super().__init__(root, tap)
        self.name = name

    def prepare(self):
        super().prepare()
        with open(os.path.join(self.root, 'etc', 'libvirtd.conf'), 'a') as f:
            f.write(f'host_uuid = "{HOST_UUIDS[self.name]}"\n')

    def virsh(self, *args, **kwargs):
        self.tap.comment(f'[libvirtd {self.name}]')
        return super().virsh(*args, **kwargs)

    def running(self):
        return re.search(rf'\b{DOMAIN}\s+running', self.virsh('list')) is not None

    def monitor_log(self):
        try:
            with open(os.path.join(self.root, 'libvirtd.log'), errors='replace') as f:
                return [line.split('buf=', 1)[1].strip() for line in f
                        if 'QEMU_MONITOR_IO_WRITE' in line and 'buf=' in line]
        except OSError:
            return []


def main():
    frostvm = os.path.abspath(os.environ['FROSTVM'])
    payload = os.path.abspath(os.environ['FROSTVM_PAYLOAD'])
    kvm = tl.kvm_usable()
    names = ['two libvirtds start, each in its own mount namespace with its own host UUID',
             f'define and start a {"kvm" if kvm else "qemu (-accel test)"} domain on libvirtd a',
             'virsh migrate --live a -> b over tcp: the domain runs on b, is gone from a',
             'the payload goes on from b\'s serial pty, errors=0 and registers intact',
             'libvirt asked for return-path and pause-before-switchover, sent migrate-continue',
             'virsh migrate --live --auto-converge b -> a: the payload goes on, errors=0',
             'destroy and undefine on both']
    tap = tl.Tap(names)
    if os.geteuid() != 0:
        tap.skip_rest('libvirtd runs as root here and this test is not root')
        return 0
    for tool in ('libvirtd', 'virsh', 'unshare'):
        if not shutil.which(tool):
            tap.skip_rest(f'{tool} is not installed (scripts/install-deps.sh installs it)')
            return 0
    base = tempfile.mkdtemp(prefix='frostvm-libvirt-migrate-')
    daemons = {n: Daemon(os.path.join(base, n), tap, n) for n in ('a', 'b')}
    a, b = daemons['a'], daemons['b']
    state = {'console': None}
    try:
        try:
            for lv in (a, b):
                lv.prepare()
                lv.start()
        except (tl.Skip, OSError, subprocess.SubprocessError) as e:
            tap.skip_rest(f'libvirtd cannot start here: {e}')
            return 0
        tap.result(True)

        def logs():
            for lv in (a, b):
                tap.comment(f'libvirtd {lv.name} log: {lv.tail("libvirtd.log", 6)}')
                tap.comment(f'domain log on {lv.name}: '
                            f'{lv.tail(f"log/qemu/{DOMAIN}.log", 6)}')

        def console_on(lv):
            if state['console']:
                state['console'].close()
            state['console'] = tl.Console(lv)
            return state['console']

        def define_start():
            xml = os.path.join(base, 'domain.xml')
            with open(xml, 'w') as f:
                f.write(tl.domain_xml(kvm, frostvm, payload))
            a.virsh('define', xml)
            a.virsh('start', DOMAIN)
            console = console_on(a)
            # Two seconds of reports: a payload started afresh on the destination
            # would report fewer steps than the source had reached.
            for _ in range(20):
                steps, regs, errors = console.progress()
                assert regs == 'ok' and errors == 0, (regs, errors)

        def migrate(src, dst, *extra):
            before = state['console'].latest()
            state['console'].close()
            state['console'] = None
            t0 = time.monotonic()
            src.virsh('migrate', '--live', '--verbose', *extra, DOMAIN, dst.uri,
                      '--migrateuri', 'tcp://127.0.0.1', timeout=120)
            tap.comment(f'virsh migrate took {time.monotonic() - t0:.1f} s; '
                        f'the payload was at step {before}')
            assert dst.running(), f'not running on {dst.name} after the migration'
            assert dst.virsh('domstate', DOMAIN).strip() == 'running'
            assert not src.running(), f'still running on {src.name} after the migration'
            state['before'] = before

        def payload_goes_on(lv):
            console = console_on(lv)
            reports = [console.progress() for _ in range(3)]
            tap.comment(f'reports on {lv.name} after the migration (steps, regs, errors): '
                        f'{reports}')
            steps = [r[0] for r in reports]
            # It goes on from where it was on the source, never from the start.
            assert steps[0] > state['before'] and steps == sorted(steps), (state['before'], steps)
            assert all(r[1] == 'ok' and r[2] == 0 for r in reports), reports

        def capabilities_asked():
            sent = a.monitor_log()
            caps = [s for s in sent if '"migrate-set-capabilities"' in s]
            on = set()
            for s in caps:
                on |= set(re.findall(r'"capability":"([\w-]+)","state":true', s))
            tap.comment(f'capabilities libvirt turned on on the source: {sorted(on)}')
            assert {'return-path', 'pause-before-switchover'} <= on, on
            assert any('"migrate-continue"' in s for s in sent), 'no migrate-continue sent'
            on_b = set()
            for s in b.monitor_log():
                if '"migrate-set-capabilities"' in s:
                    on_b |= set(re.findall(r'"capability":"([\w-]+)","state":true', s))
            tap.comment(f'capabilities libvirt turned on on the destination: {sorted(on_b)}')
            assert 'return-path' in on_b, on_b
            state['source_log_len'] = len(sent)

        def migrate_back():
            migrate(b, a, '--auto-converge', '--auto-converge-initial', '30',
                    '--auto-converge-increment', '15')
            payload_goes_on(a)
            sent = b.monitor_log()
            assert any(re.search(r'"capability":"auto-converge","state":true', s)
                       for s in sent if '"migrate-set-capabilities"' in s), \
                'libvirt did not turn auto-converge on'
            params = [s for s in sent if '"migrate-set-parameters"' in s
                      and '"cpu-throttle-initial":30' in s and '"cpu-throttle-increment":15' in s]
            assert params, 'libvirt did not set the cpu-throttle parameters'
            tap.comment(f'sent to the source: {params[0]}')

        def cleanup_domain():
            if state['console']:
                state['console'].close()
                state['console'] = None
            a.virsh('destroy', DOMAIN)
            for lv in (a, b):
                lv.virsh('undefine', DOMAIN, check=False)
                assert DOMAIN not in lv.virsh('list', '--all')

        for fn in (define_start, lambda: migrate(a, b), lambda: payload_goes_on(b),
                   capabilities_asked, migrate_back, cleanup_domain):
            tap.step(fn, logs)
    finally:
        if state['console']:
            state['console'].close()
        for lv in (a, b):
            lv.cleanup()
        tap.remove_or_keep(base)
    return 0


if __name__ == '__main__':
    sys.exit(main())
