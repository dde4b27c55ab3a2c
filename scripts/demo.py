#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""make demo: frostvm's main job on the embedded default guest.

Boots the test payload in a 512 MiB guest writing 128 MiB at full speed, shows it
over QMP and HMP, takes a live background snapshot with the lines a QEMU user
types, checks the image, restores it in a second frostvm, verifies the guest's
memory invariant at the snapshot instant and that the restored guest carries on,
and prints the figures. Uses KVM when /dev/kvm works, else -accel test.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from frostvm_qmp import QMP, kvm_usable, wait_for_line, parse_kv, start_vm, stop_vm  # noqa: E402

BUILD = os.environ.get('BUILD', os.path.join(os.path.dirname(HERE), 'build'))
FROSTVM = os.path.join(BUILD, 'frostvm')
IMG = os.path.join(BUILD, 'frostvm-img')
PAYLOAD = os.path.join(BUILD, 'tests', 'guest', 'payload.elf')
CHECK = os.path.join(BUILD, 'tests', 'guest', 'payload-check')


def say(msg=''):
    print(msg, flush=True)


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    work = tempfile.mkdtemp(prefix='frostvm-demo-')
    procs = []
    try:
        return demo(work, procs)
    finally:
        for p in procs:
            stop_vm(p)
        shutil.rmtree(work, ignore_errors=True)


def demo(work, procs):
    kvm = kvm_usable()
    append = 'mem=128M order=random report_ms=100'
    accel = ['-accel', 'kvm', '-kernel', PAYLOAD] if kvm else ['-accel', 'test']
    if not kvm:
        say('note: /dev/kvm is not usable here; the demo runs with -accel test '
            '(host threads write guest RAM as the payload would)')
    src_sock, src_log = os.path.join(work, 'src.qmp'), os.path.join(work, 'src.serial')
    image = os.path.join(work, 'vm_state')
    argv = [FROSTVM, '-m', '512', *accel, '-append', append, '-display', 'none',
            '-serial', f'file:{src_log}', '-qmp', f'unix:{src_sock},server=on,wait=off']
    say('$ ' + ' '.join(argv))
    t0 = time.monotonic()
    src = start_vm(argv, open(os.path.join(work, 'src.err'), 'w'))
    procs.append(src)
    line, _ = wait_for_line(src_log, 'PROGRESS', timeout=60, proc=src)
    say(f'first progress line after {time.monotonic() - t0:.2f} s: {line}')
    line, off = wait_for_line(src_log, 'PAYLOAD READY', timeout=120, proc=src)
    say(f'guest touched all of its 128 MiB range: {line}')

    q = QMP(src_sock)
    say('\nQMP  query-status -> ' + str(q.cmd('query-status')))
    say('HMP  info status   -> ' + q.hmp('info status').strip())
    time.sleep(1.0)
    before, off = wait_for_line(src_log, 'PROGRESS', start=off, timeout=10)
    rate_before = int(parse_kv(before)['rate'])

    with open(src_log, 'rb') as f:
        snap_start = len(f.read())
    say('\nTaking a background snapshot while the guest writes:')
    for cmd in ['migrate_set_parameter max-bandwidth 4G',
                'migrate_set_capability background-snapshot on',
                f"migrate exec:'cat > {image}'"]:
        say(f'(frostvm) {cmd}')
        out = q.hmp(cmd).strip()
        if out:
            say(out)
    ev = q.wait_event('MIGRATION', timeout=300,
                      pred=lambda e: e['data']['status'] in ('completed', 'failed', 'cancelled'))
    info = q.cmd('query-migrate')
    # The report that follows the end still covers the snapshot's last moments.
    _, snap_end = wait_for_line(src_log, 'PROGRESS', start=os.path.getsize(src_log), timeout=10)
    if ev['data']['status'] != 'completed':
        say(f"snapshot {ev['data']['status']}: {info.get('error-desc')}")
        return 1
    say('(frostvm) info migrate')
    say(q.hmp('info migrate').rstrip())

    # Guest progress during the snapshot, from its own reports.
    rates, stalls = [], []
    with open(src_log, 'rb') as f:
        f.seek(snap_start)
        window = f.read(snap_end - snap_start).decode(errors='replace')
        for ln in window.splitlines():
            if ln.startswith('PROGRESS'):
                kv = parse_kv(ln)
                rates.append(int(kv['rate']))
                stalls.append(int(kv['maxstall_us']))
    q.cmd('quit')
    src.wait(10)

    rc, out = run([IMG, 'check', image])
    say('\n$ frostvm-img check vm_state\n' + out.rstrip())
    if rc:
        return 1
    rc, out = run([IMG, 'info', image])
    m = re.search(r'data pages:\s*(\d+)', out)
    data = int(m.group(1)) if m else None
    size = os.path.getsize(image)

    dump = os.path.join(work, 'ram.raw')
    rc, out = run([IMG, 'dump-ram', image, dump])
    if rc:
        say(out)
        return 1
    rc, out = run([CHECK, dump])
    say('\n$ payload-check (memory of the image, the instant of the snapshot)\n' + out.rstrip())
    os.unlink(dump)
    if rc:
        return 1

    dst_sock, dst_log = os.path.join(work, 'dst.qmp'), os.path.join(work, 'dst.serial')
    argv = [FROSTVM, '-m', '512', *(['-accel', 'test', '-append', append] if not kvm else []),
            '-display', 'none', '-serial', f'file:{dst_log}',
            '-qmp', f'unix:{dst_sock},server=on,wait=off', '-incoming', f'exec:cat {image}']
    say('\n$ ' + ' '.join(argv))
    t0 = time.monotonic()
    dst = start_vm(argv, open(os.path.join(work, 'dst.err'), 'w'))
    procs.append(dst)
    first, off = wait_for_line(dst_log, 'PROGRESS', timeout=60, proc=dst)
    restore_s = time.monotonic() - t0
    later, _ = wait_for_line(dst_log, 'PROGRESS', start=off, timeout=30, proc=dst)
    say(f'restored guest running after {restore_s:.2f} s:\n  {first}\n  {later}')
    ok = 'regs=ok' in later and 'errors=0' in later
    q2 = QMP(dst_sock)
    q2.cmd('quit')
    dst.wait(10)

    snap = info.get('background-snapshot', {})
    ram = info.get('ram', {})
    say('\nSummary')
    say(f"  downtime                 {info.get('downtime')} ms "
        f"({snap.get('downtime-us')} us)")
    say(f"  snapshot time            {info.get('total-time')} ms")
    nonzero = (data or ram.get('normal', 0)) * 4096
    say(f'  image size               {size / 2**20:.1f} MiB; non-zero guest RAM '
        f'{nonzero / 2**20:.1f} MiB (ratio {size / max(nonzero, 1):.4f})')
    say(f"  write faults             {snap.get('write-faults')}, pages saved out of order "
        f"{snap.get('pages-out-of-order')}")
    say(f"  fault service (us)       p50 {snap.get('fault-service-p50-us')} p99 "
        f"{snap.get('fault-service-p99-us')} p99.9 {snap.get('fault-service-p999-us')} "
        f"max {snap.get('fault-service-max-us')}")
    if rates:
        say(f'  guest during snapshot    {min(rates)}..{max(rates)} page steps/s per '
            f'report (before: {rate_before}); worst write stall {max(stalls)} us')
    say(f'  restore to running       {restore_s:.2f} s')
    say('  invariant at the instant  ok; restored guest ' +
        ('continues with regs=ok errors=0' if ok else 'REPORTED ERRORS'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
