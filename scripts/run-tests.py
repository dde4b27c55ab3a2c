#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs every test meson knows of and counts results case by case.

GTest programs speak TAP (each `ok`/`not ok` line is one case; `# SKIP` lines are
skips, never passes); other tests count by exit status (0 pass, 77 skip). A program
that crashes or times out counts as one more failure. Ends with the line
`N passed, N failed[, N skipped]` and exits non-zero on any failure.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

from hugepages import (HugePagesError, free_huge_pages, mount_hugetlbfs, release_huge_pages,
                       reserve_huge_pages, unmount_hugetlbfs)

TAP_RESULT = re.compile(r'^(not ok|ok)\b\s*(\d+)?\s*-?\s*(.*)$')


def introspect(build):
    out = subprocess.run(['meson', 'introspect', '--tests', build],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run_one(test, build, counts, failures, verbose):
    env = dict(os.environ)
    env.update(test.get('env') or {})
    env.setdefault('G_DEBUG', 'fatal-criticals')
    # GLib 2.74's slice allocator keeps leaked json-glib objects reachable, so a
    # sanitizer build would not report them (a leak in QMP replies went unseen).
    env.setdefault('G_SLICE', 'always-malloc')
    cmd = list(test['cmd'])
    timeout = test.get('timeout') or 60
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=test.get('workdir') or build, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout * 2 if timeout > 0 else None)
        output = proc.stdout.decode(errors='replace')
        rc = proc.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b'').decode(errors='replace') + '\n[timed out]\n'
        rc = -1
    elapsed = time.monotonic() - start
    p = f = s = 0
    bad = []
    if test.get('protocol') == 'tap':
        plan = None
        seen = 0
        for line in output.splitlines():
            m = re.match(r'^1\.\.(\d+)', line)
            if m:
                plan = int(m.group(1))
                continue
            m = TAP_RESULT.match(line)
            if not m:
                continue
            seen += 1
            if m.group(1) == 'not ok':
                f += 1
                bad.append(line)
            elif '# SKIP' in line or '# skip' in line:
                s += 1
                if verbose:
                    print(f'    skipped: {line}')
            else:
                p += 1
        if rc != 0 and f == 0:
            f += 1
            bad.append(f'{test["name"]}: exit status {rc} after {seen} cases')
        elif plan is not None and seen < plan:
            f += plan - seen
            bad.append(f'{test["name"]}: {plan - seen} planned cases never reported')
    else:
        if rc == 0:
            p = 1
        elif rc == 77:
            s = 1
        else:
            f = 1
            bad.append(f'{test["name"]}: exit status {rc}')
    counts[0] += p
    counts[1] += f
    counts[2] += s
    status = 'FAIL' if f else 'ok'
    print(f'{status:4} {test["name"]:40} {p} passed, {f} failed, {s} skipped '
          f'({elapsed:.1f}s)', flush=True)
    if f:
        failures.append((test['name'], bad, output))
    for line in output.splitlines():
        if '# SKIP' in line and not verbose:
            print(f'     {line.strip()}')


# Enough 2 MiB huge pages for the hugetlbfs cases: the largest, the incremental chain of a
# 256 MiB guest restored beside it, needs 256; a snapshot of a 64 MiB guest restored beside
# it 64; the snapshot engine's 40.
HUGE_PAGES_WANTED = 256


def reserve_for_tests():
    """As root, reserve huge pages so the hugetlbfs cases run instead of skipping; returns
    what to give back, or None when nothing was changed (they skip then, saying why)."""
    if os.geteuid() != 0:
        return None
    try:
        old = reserve_huge_pages(HUGE_PAGES_WANTED)
    except HugePagesError as e:
        print(f'hugetlbfs cases will skip: {e}')
        return None
    if old is not None:
        print(f'reserved {free_huge_pages()} free 2 MiB huge pages for the hugetlbfs cases '
              f'(vm.nr_hugepages {old} until the end)')
    return old


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else 'build'
    only = sys.argv[2:]
    verbose = os.environ.get('V') == '1'
    counts = [0, 0, 0]
    failures = []
    tests = introspect(build)
    # A kill gives the huge pages back too (the finally below runs on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    old_huge = reserve_for_tests()
    # The file-on-hugetlbfs cases need a mount; as root one is made for the run.
    mount = mount_hugetlbfs()
    try:
        for t in tests:
            if only and not any(o in t['name'] for o in only):
                continue
            run_one(t, build, counts, failures, verbose)
    finally:
        unmount_hugetlbfs(mount)
        release_huge_pages(old_huge)
    for name, bad, output in failures:
        print(f'\n===== {name} failed =====')
        for b in bad:
            print(f'  {b}')
        tail = output.splitlines()[-60:]
        print('  --- last output ---')
        for line in tail:
            print(f'  {line}')
    line = f'{counts[0]} passed, {counts[1]} failed'
    if counts[2]:
        line += f', {counts[2]} skipped'
    print(line)
    sys.exit(1 if counts[1] else 0)


if __name__ == '__main__':
    main()
