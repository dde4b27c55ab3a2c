# SPDX-License-Identifier: GPL-2.0-or-later
"""The benchmark plan: which guests to boot, what to run on each, and the table titles."""
from jobs import Job
from vm import Guest

REPORT = 'report_ms=50'

# Scenario id -> (title, note). Order here is the order of the tables.
TITLES = {
    'bg-tmpfs': 'Background snapshot, 512 MiB guest sweeping 128 MiB, to `exec:cat > FILE` on tmpfs',
    'bg-disk': 'Background snapshot, 512 MiB / 128 MiB busy, to `exec:cat > FILE` on disk (ext4)',
    'bg-file': 'Background snapshot, 512 MiB / 128 MiB busy, to `file:FILE` on tmpfs (frostvm '
               'writes the file itself; QEMU 7.2 has no `file:`, its column is `bg-tmpfs`)',
    'bg-file-disk': 'Background snapshot, 512 MiB / 128 MiB busy, to `file:FILE` on disk (ext4; '
                    'QEMU column: `bg-disk`)',
    'bg-100m': 'Background snapshot, 512 MiB / 128 MiB busy, to `exec:pv -q -L 100m > FILE`',
    'bg-20m': 'Background snapshot, 512 MiB / 128 MiB busy, to `exec:pv -q -L 20m > FILE`',
    'bg-20m-pool16': 'Background snapshot, 512 MiB / 128 MiB busy, 20 MiB/s sink, frostvm pool '
                     '16 MiB (smaller than the hot set); QEMU column: the same run as above '
                     '(QEMU has no pool)',
    'smc-tmpfs': '`stop; migrate; cont`, 512 MiB / 128 MiB busy, to tmpfs (the downtime reference)',
    'precopy-tmpfs': 'Live precopy, 512 MiB / 128 MiB busy, to `exec:cat > FILE` on tmpfs '
                     '(bound 30 s)',
    'precopy-100m': 'Live precopy, 512 MiB / 128 MiB busy (sequential), to 100 MiB/s (bound 10 s)',
    'precopy-100m-ac': 'Live precopy with auto-converge, 512 MiB / 128 MiB busy (sequential), '
                       'to 100 MiB/s (bound 60 s)',
    'bg-100m-random': 'Background snapshot, 512 MiB / 128 MiB busy in random order, to 100 MiB/s',
    'precopy-100m-random': 'Live precopy, 512 MiB / 128 MiB busy in random order, to 100 MiB/s '
                           '(bound 10 s)',
    'bg-100m-idle': 'Background snapshot, 512 MiB, 128 MiB written once then idle, to 100 MiB/s',
    'precopy-100m-idle': 'Live precopy, 512 MiB, 128 MiB written once then idle, to 100 MiB/s',
    'bg-256': 'Background snapshot, 256 MiB guest sweeping 64 MiB, to tmpfs',
    'bg-256-idle': 'Background snapshot, 256 MiB guest, idle (1 MiB written once), to tmpfs',
    'bg-1g': 'Background snapshot, 1 GiB guest sweeping 256 MiB, to tmpfs',
    'bg-1g-idle': 'Background snapshot, 1 GiB guest, idle (1 MiB written once), to tmpfs',
    'bg-2g': 'Background snapshot, 2 GiB guest sweeping 1 GiB, to tmpfs',
    'bg-2g-idle': 'Background snapshot, 2 GiB guest, idle (1 MiB written once), to tmpfs',
    'bg-smp2': 'Background snapshot, 512 MiB guest with two vCPUs sweeping 128 MiB between '
               'them, to tmpfs (both of the host\'s CPUs busy with vCPUs)',
    'bg-memfd': 'Background snapshot, 512 MiB guest on shared memory (`memory-backend-memfd`, '
                'share=on) sweeping 128 MiB, to tmpfs',
    'bg-hugetlb': 'Background snapshot, 512 MiB guest on 2 MiB hugetlb pages '
                  '(`memory-backend-memfd`, share=on, hugetlb=on) sweeping 128 MiB, to tmpfs',
    'thp-tmpfs': 'After a background snapshot to tmpfs: huge pages and rate of a fresh 512 MiB '
                 'guest sweeping 128 MiB, watched for 6 s after the end',
    'thp-20m': 'After a background snapshot to 20 MiB/s: huge pages and rate, watched for 6 s '
               'after the end',
}

# Scenarios that watch the guest after the snapshot (issue 15), with their sink's label.
AFTER = [('thp-tmpfs', 'tmpfs sink'), ('thp-20m', '20 MiB/s sink')]

# Background snapshot rows of the image-size-against-dirty-rate plot, with their precopy twin.
DIRTY_PLOT = [('bg-100m-idle', 'precopy-100m-idle'), ('bg-100m-random', 'precopy-100m-random'),
              ('bg-100m', 'precopy-100m')]
DIRTY_LABELS = ['idle', 'random', 'sequential']

# The QEMU figures a frostvm-only scenario is compared with.
QEMU_REFERENCE = {'bg-20m-pool16': 'bg-20m', 'bg-file': 'bg-tmpfs', 'bg-file-disk': 'bg-disk'}


class GuestPlan:
    def __init__(self, guest, jobs, ready_timeout=60, restore=None):
        self.guest = guest
        self.jobs = jobs
        self.ready_timeout = ready_timeout
        self.restore = restore    # scenario whose kept image is restored


def guest(name, ram, append, idle=False, smp=1, backend=None):
    # The payload sweeps on as many CPUs as its cpus= says, whatever -smp gives it (the
    # test accelerator takes -smp and ignores the key).
    cpus = f' cpus={smp}' if smp > 1 else ''
    return Guest(name, ram, f'{append} {REPORT}{cpus}', idle=idle, smp=smp, backend=backend)


def full_plan():
    g512 = guest('512', 512, 'mem=128M order=seq')
    return [
        GuestPlan(g512, [
            Job('bg-tmpfs', 'bg', 'tmpfs', keep_image=True),
            Job('bg-disk', 'bg', 'disk'),
            # What README shows: frostvm writes the image itself (util/atomic-file.c).
            Job('bg-file', 'bg', 'file-tmpfs', vmms=('frostvm',)),
            Job('bg-file-disk', 'bg', 'file-disk', vmms=('frostvm',)),
            Job('bg-100m', 'bg', '100m'),
            Job('bg-20m', 'bg', '20m'),
            Job('bg-20m-pool16', 'bg', '20m', params={'background-snapshot-buffer-size': 16 << 20},
                vmms=('frostvm',)),
            Job('smc-tmpfs', 'smc', 'tmpfs'),
            Job('precopy-tmpfs', 'precopy', 'tmpfs', bound_s=30),
            Job('precopy-100m', 'precopy', '100m', reps=1, bound_s=10),
            # The same with auto-converge on for both VMMs, throttle parameters at their
            # defaults (20% at first, 10% more per step): steps come a few seconds apart,
            # so the bound is long. Last in this VM: a throttle cannot outlast it into
            # another scenario's rate before.
            Job('precopy-100m-ac', 'precopy', '100m', reps=1, bound_s=60,
                caps={'auto-converge': True}),
        ], restore='bg-tmpfs'),
        # A fresh guest: its huge pages before the first snapshot are the kernel's, not
        # left over from other scenarios.
        GuestPlan(guest('512t', 512, 'mem=128M order=seq'), [
            Job('thp-tmpfs', 'bg', 'tmpfs', after_s=6),
            Job('thp-20m', 'bg', '20m', after_s=6),
        ]),
        GuestPlan(guest('512r', 512, 'mem=128M order=random'), [
            Job('bg-100m-random', 'bg', '100m', reps=1),
            Job('precopy-100m-random', 'precopy', '100m', reps=1, bound_s=10),
        ]),
        GuestPlan(guest('512i', 512, 'mem=128M idle=1', idle=True), [
            Job('bg-100m-idle', 'bg', '100m', reps=1),
            Job('precopy-100m-idle', 'precopy', '100m', reps=1, bound_s=10),
        ]),
        GuestPlan(guest('256', 256, 'mem=64M order=seq'),
                  [Job('bg-256', 'bg', 'tmpfs', keep_image=True)], restore='bg-256'),
        GuestPlan(guest('256i', 256, 'mem=1M idle=1', idle=True),
                  [Job('bg-256-idle', 'bg', 'tmpfs', keep_image=True)], restore='bg-256-idle'),
        GuestPlan(guest('1g', 1024, 'mem=256M order=seq'),
                  [Job('bg-1g', 'bg', 'tmpfs', keep_image=True)], restore='bg-1g'),
        GuestPlan(guest('1gi', 1024, 'mem=1M idle=1', idle=True),
                  [Job('bg-1g-idle', 'bg', 'tmpfs', keep_image=True)], restore='bg-1g-idle'),
        GuestPlan(guest('2g', 2048, 'mem=1G order=seq'),
                  [Job('bg-2g', 'bg', 'tmpfs', keep_image=True)], ready_timeout=120,
                  restore='bg-2g'),
        GuestPlan(guest('512s2', 512, 'mem=128M order=seq', smp=2),
                  [Job('bg-smp2', 'bg', 'tmpfs')]),
        GuestPlan(guest('512m', 512, 'mem=128M order=seq', backend='memfd'),
                  [Job('bg-memfd', 'bg', 'tmpfs')]),
        # Needs 256 free 2 MiB huge pages: bench/run reserves them as root (vm.nr_hugepages)
        # and gives them back after.
        GuestPlan(guest('512h', 512, 'mem=128M order=seq', backend='memfd-hugetlb'),
                  [Job('bg-hugetlb', 'bg', 'tmpfs')]),
        GuestPlan(guest('2gi', 2048, 'mem=1M idle=1', idle=True),
                  [Job('bg-2g-idle', 'bg', 'tmpfs', keep_image=True)], restore='bg-2g-idle'),
    ]


def quick_plan():
    g512 = guest('512', 512, 'mem=128M order=seq')
    return [
        GuestPlan(g512, [
            Job('bg-tmpfs', 'bg', 'tmpfs', reps=1, keep_image=True),
            Job('bg-100m', 'bg', '100m', reps=1),
            Job('smc-tmpfs', 'smc', 'tmpfs', reps=1),
            Job('precopy-tmpfs', 'precopy', 'tmpfs', reps=1, bound_s=15),
        ], restore='bg-tmpfs'),
        GuestPlan(guest('256i', 256, 'mem=1M idle=1', idle=True),
                  [Job('bg-256-idle', 'bg', 'tmpfs', reps=1)]),
    ]
