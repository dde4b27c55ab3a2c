#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Print when this machine's CPUs lose time to its host (steal in /proc/stat) and when
its kernel reports free memory to the host (free page reporting), every 5 ms.

    bench/host-steal.py SECONDS [OUT]

Run beside a benchmark: a guest stall that no thread of this kernel explains (the vCPU
thread stayed on its CPU, no KVM exit was long) shows here as steal, and a report of
free memory just before it names the host's work as the cause. A line is printed only
when something moved; 'loop' is how long the 5 ms sleep took (a frozen machine
stretches it). Steal counts in 10 ms ticks.
"""
import sys
import time

REPORTED = '/sys/module/page_reporting/parameters/reported_kib'


def sample():
    steal = {}
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith('cpu') and line[3].isdigit():
                fields = line.split()
                steal[fields[0]] = int(fields[8]) * 10
    try:
        with open(REPORTED) as f:
            reported = int(f.read())
    except OSError:
        reported = 0
    return steal, reported


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    seconds = float(sys.argv[1])
    out = open(sys.argv[2], 'w') if len(sys.argv) > 2 else sys.stdout
    steal, reported = sample()
    t_prev = time.monotonic()
    end = t_prev + seconds
    while time.monotonic() < end:
        time.sleep(0.005)
        now_steal, now_reported = sample()
        t = time.monotonic()
        grew = {c: now_steal[c] - steal[c] for c in now_steal if now_steal[c] != steal[c]}
        if grew or now_reported != reported:
            parts = ' '.join(f'{c} steal +{ms} ms' for c, ms in sorted(grew.items()))
            if now_reported != reported:
                parts += f' reported +{(now_reported - reported) >> 10} MiB'
            out.write(f'{time.time():.3f} {parts.strip()}, loop {1000 * (t - t_prev):.0f} ms\n')
            out.flush()
        steal, reported, t_prev = now_steal, now_reported, t


if __name__ == '__main__':
    main()
