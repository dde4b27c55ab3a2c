# SPDX-License-Identifier: GPL-2.0-or-later
"""The targets of issues 6, 5, 13 and 15, checked against one run's medians."""
from metrics import Runs, reason
from scenarios import QEMU_REFERENCE

BG_BUSY = ['bg-tmpfs', 'bg-disk', 'bg-file', 'bg-file-disk', 'bg-100m', 'bg-20m',
           'bg-100m-random', 'bg-256', 'bg-1g', 'bg-2g', 'bg-memfd', 'bg-hugetlb']
BG_ALL = BG_BUSY + ['bg-100m-idle', 'bg-256-idle', 'bg-1g-idle', 'bg-2g-idle']
SINK_MIB_S = {'bg-100m': 100, 'bg-20m': 20, 'bg-100m-random': 100, 'bg-100m-idle': 100}
RESTORES = ['bg-tmpfs', 'bg-256', 'bg-256-idle', 'bg-1g', 'bg-1g-idle', 'bg-2g', 'bg-2g-idle']

KEPT = lambda r: r['kept']  # noqa: E731
STALL = lambda r: r['stall_ms']  # noqa: E731
PAUSE = lambda r: r['pause_ms']  # noqa: E731
DOWNTIME = lambda r: r['downtime_ms']  # noqa: E731
TOTAL = lambda r: r['total_ms']  # noqa: E731
IMAGE = lambda r: r['image_bytes']  # noqa: E731


class Table:
    def __init__(self, results, restore=False):
        self.results = results
        self.restore = restore
        self.rows = []

    def median(self, scenario, vmm, fn):
        runs = Runs(self.results, scenario, vmm, self.restore)
        return runs, runs.median(fn)

    def add(self, target, where, fval, qval, verdict):
        self.rows.append(f'| {target} | {where} | {fval} | {qval} | {verdict} |')

    def missing(self, runs):
        """Cell text for a scenario that has no figure, or None when it has one."""
        if not runs.all:
            return None
        if not runs.ok:
            return 'failed: ' + reason(runs.failed[0])
        return None

    def compare(self, target, scenarios, fn, fmt, test):
        """One row per scenario: test(f, q) returns (met, note)."""
        for s in scenarios:
            fr, f = self.median(s, 'frostvm', fn)
            qr, q = self.median(QEMU_REFERENCE.get(s, s), 'qemu', fn)
            if not fr.all and not qr.all:
                continue
            fm, qm = self.missing(fr), self.missing(qr)
            if f is None or q is None:
                self.add(target, f'`{s}`', fm or (fmt(f) if f is not None else '-'),
                         qm or (fmt(q) if q is not None else '-'),
                         'not measured' if not (fm or qm) else 'missed (no figure)')
                continue
            if q == 0:
                self.add(target, f'`{s}`', fmt(f), fmt(q), 'not comparable (QEMU figure is 0)')
                continue
            met, note = test(f, q)
            self.add(target, f'`{s}`', fmt(f), fmt(q), ('met' if met else 'missed') +
                     (f': {note}' if note else ''))

    def absolute_with_qemu(self, target, scenarios, fn, fmt, test):
        """An absolute target for frostvm, with QEMU's figure beside it for reference."""
        for s in scenarios:
            fr, f = self.median(s, 'frostvm', fn)
            qr, q = self.median(QEMU_REFERENCE.get(s, s), 'qemu', fn)
            if not fr.all:
                continue
            qcell = self.missing(qr) or (fmt(q) if q is not None else '-')
            if f is None:
                self.add(target, f'`{s}`', self.missing(fr) or '-', qcell, 'missed (no figure)')
                continue
            met, note = test(f, fr)
            self.add(target, f'`{s}`', fmt(f), qcell, ('met' if met else 'missed') +
                     (f': {note}' if note else ''))

    def absolute(self, target, scenarios, fn, fmt, test):
        for s in scenarios:
            fr, f = self.median(s, 'frostvm', fn)
            if not fr.all:
                continue
            if f is None:
                self.add(target, f'`{s}`', self.missing(fr) or '-', '', 'missed (no figure)')
                continue
            met, note = test(f, fr)
            self.add(target, f'`{s}`', fmt(f), '', ('met' if met else 'missed') +
                     (f': {note}' if note else ''))


def ms(v):
    return f'{v:.2f} ms' if v < 10 else f'{v:.0f} ms'


def pct(v):
    return f'{100 * v:.0f}%'


def table(results):
    t = Table(results)
    # Issue 6.
    t.compare('worst stall, 20 MiB/s sink, at most 1/50 of QEMU\'s', ['bg-20m'], STALL, ms,
              lambda f, q: (f <= q / 50, f'{q / f:.0f} times smaller' if f > 0 else ''))

    def kept(f, q):
        need = 4 * q
        if need > 1:
            return f >= need, f'{f / q:.1f}x QEMU\'s share; 4x ({100 * need:.0f}%) is unattainable'
        return f >= need, f'{f / q:.1f}x QEMU\'s share'
    t.compare('throughput kept at least 4x QEMU\'s share', BG_BUSY, KEPT, pct, kept)
    def downtime(s):
        fp, qp = t.median(s, 'frostvm', PAUSE)[1], t.median(s, 'qemu', PAUSE)[1]
        if fp is None or qp is None:
            return ''
        return f'; STOP to RESUME events: {fp:.2f} ms against {qp:.2f} ms'
    for s in BG_ALL:
        t.compare('downtime (query-migrate) at most QEMU\'s', [s], DOWNTIME,
                  lambda v: f'{v:.0f} ms',
                  lambda f, q, s=s: (f <= q, f'{f / q:.2f}x' + downtime(s)))

    def image(f, q):
        d = f / q - 1
        note = f'{100 * d:+.1f}%'
        if d < -0.01:
            note += ' (smaller: QEMU also saves its firmware and VGA RAM)'
        return d <= 0.01, note
    t.compare('image size equal to QEMU\'s within 1%', BG_ALL, IMAGE,
              lambda v: f'{v / 2**20:.1f} MiB', image)
    t.compare('snapshot total time at most 1.1x QEMU\'s', BG_ALL, TOTAL, lambda v: f'{v:.0f} ms',
              lambda f, q: (f <= 1.1 * q, f'{f / q:.2f}x'))
    t2 = Table(results, restore=True)
    t2.compare('restore to running at most half of QEMU\'s time', RESTORES,
               lambda r: r['to_running_s'], lambda v: f'{v:.3f} s',
               lambda f, q: (f <= q / 2, f'{f / q:.2f}x'))
    t.rows += t2.rows
    # Issue 5: frostvm's own, absolute.
    default_pool = [s for s in BG_BUSY]
    t.absolute('(issues 5, 13) worst stall under 1 ms, default pool', default_pool, STALL, ms,
               lambda f, r: (f < 1, ''))
    t.absolute('(issue 5) throughput kept at least 90%, default pool', default_pool, KEPT, pct,
               lambda f, r: (f >= 0.9, ''))
    qr, q20 = t.median('bg-20m', 'qemu', KEPT)
    if q20 is not None:
        t.absolute(f'(issue 5) pool smaller than the hot set: kept at least QEMU\'s ({pct(q20)})',
                   ['bg-20m-pool16'], KEPT, pct, lambda f, r: (f >= q20, ''))
    t.absolute('(issues 5, 13) pool smaller than the hot set: worst stall under 5 ms',
               ['bg-20m-pool16'], STALL, ms, lambda f, r: (f < 5, ''))
    t.absolute('(issue 5) downtime under 5 ms for a 2 GiB guest', ['bg-2g', 'bg-2g-idle'], PAUSE,
               ms, lambda f, r: (f < 5, ''))
    t.absolute('(issues 5, 13) fault service p99 under 100 us', BG_ALL + ['bg-20m-pool16'],
               lambda r: r['bgs']['fault-service-p99-us'], lambda v: f'{v:.0f} us',
               lambda f, r: (f < 100, ''))
    t.absolute('(issue 5) image at most 1.01x non-zero RAM + 1 MiB', BG_ALL,
               lambda r: r['image_bytes'] / (1.01 * r['nonzero_bytes'] + 2**20),
               lambda v: f'{v:.3f} of the limit', lambda f, r: (f <= 1, ''))
    for s, rate in SINK_MIB_S.items():
        t.absolute(f'(issue 5) time at most 1.2x image / {rate} MiB/s', [s],
                   lambda r, rate=rate: r['total_ms'] / 1000 / (r['image_bytes'] / 2**20 / rate),
                   lambda v: f'{v:.2f}x', lambda f, r: (f <= 1.2, ''))
    fr, smc = t.median('smc-tmpfs', 'frostvm', TOTAL)
    if smc:
        t.absolute(f'(issue 5) fast sink: at most 1.5x stop-migrate-cont ({smc:.0f} ms)',
                   ['bg-tmpfs'], TOTAL, lambda v: f'{v:.0f} ms ({v / smc:.2f}x)',
                   lambda f, r: (f <= 1.5 * smc, ''))
    t.absolute('(issue 5) memory beyond guest RAM at most the pool + 1% of RAM', BG_ALL,
               lambda r: r['rss_delta_mib'] * 2**20 / (r['bgs']['buffer-pool-size']
                                                       + r['query']['ram']['total'] / 100),
               lambda v: f'{v:.2f} of the limit', lambda f, r: (f <= 1, ''))
    t.absolute('(issue 5) idle 2 GiB guest snapshots in under 0.5 s', ['bg-2g-idle'], TOTAL,
               lambda v: f'{v:.0f} ms', lambda f, r: (f < 500, ''))
    issue13(t)
    issue15(t)
    head = ['| target | scenario | frostvm | QEMU 7.2 | verdict |', '|---|---|---|---|---|']
    return '\n'.join(head + t.rows)


def cpu_per_gib(r):
    return r['cpu_migration_ms'] / (r['image_bytes'] / 2**30)


def issue13(t):
    """Tails and CPU cost (the stall and fault service rows are issue 5's above)."""
    t.absolute('(issue 13) kept at least 95% at a 20 MiB/s sink, default pool', ['bg-20m'],
               KEPT, pct, lambda f, r: (f >= 0.95, ''))
    t.absolute('(issue 13) kept at least 80% at a fast sink, default pool',
               ['bg-tmpfs', 'bg-disk', 'bg-file', 'bg-file-disk'], KEPT, pct,
               lambda f, r: (f >= 0.8, ''))
    t.compare('(issue 13) stop; migrate; cont: pause no longer than QEMU\'s', ['smc-tmpfs'],
              PAUSE, ms, lambda f, q: (f <= q, f'{f / q:.2f}x'))
    t.compare('(issue 13) precopy: share of the rate kept no less than QEMU\'s',
              ['precopy-tmpfs'], KEPT, pct, lambda f, q: (f >= q, ''))
    t.compare('(issue 13) CPU of the copying threads per GiB saved no more than QEMU\'s',
              BG_ALL, cpu_per_gib, lambda v: f'{v:.0f} ms/GiB',
              lambda f, q: (f <= q, f'{f / q:.2f}x'))


def thp_share(r, at):
    pts = r.get('thp_after') or []
    if not pts or not r.get('thp_before_kib'):
        return None
    return min(pts, key=lambda p: abs(p[0] - at))[1] / r['thp_before_kib']


def issue15(t):
    """After the snapshot: huge pages back, and the guest's speed."""
    after = ['thp-tmpfs', 'thp-20m']
    t.absolute_with_qemu('(issue 15) at least 95% of THP-backed guest RAM huge again 1 s '
                         'after the end (runs that had huge pages before)', after,
                         lambda r: thp_share(r, 1), pct, lambda f, r: (f >= 0.95, ''))
    t.absolute_with_qemu('(issue 15) guest rate from 1 s after the end at least 98% of before',
                         after, lambda r: r['rate_from_1s'] / r['rate_before'], pct,
                         lambda f, r: (f >= 0.98, ''))
