# SPDX-License-Identifier: GPL-2.0-or-later
"""Data files for the gnuplot scripts in bench/, and the PNGs drawn from them."""
import os
import statistics
import subprocess

from metrics import Runs
from scenarios import AFTER, DIRTY_LABELS, DIRTY_PLOT, TITLES

TIMELINES = [('bg-20m', '20 MiB/s sink'), ('bg-100m', '100 MiB/s sink'),
             ('bg-tmpfs', 'tmpfs sink'), ('bg-2g', '2 GiB guest, tmpfs sink')]


def representative(runs):
    """The completed run whose total time is the median one (the run the plot shows)."""
    ok = [r for r in runs.ok if r.get('trace')]
    if not ok:
        return None
    ok.sort(key=lambda r: r.get('total_ms') or 0)
    return ok[(len(ok) - 1) // 2]


def gnuplot(script, variables):
    defs = '; '.join(f"{k}='{v}'" if isinstance(v, str) else f'{k}={v}'
                     for k, v in variables.items())
    r = subprocess.run(['gnuplot', '-e', defs, script], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'gnuplot {os.path.basename(script)}: {r.stderr.strip()[-300:]}')


def timeline(results, scenario, label, plot_dir, data_dir, bench_dir):
    runs = {v: representative(Runs(results, scenario, v)) for v in ('frostvm', 'qemu')}
    if not all(runs.values()):
        return None
    files = {}
    for vmm, r in runs.items():
        path = os.path.join(data_dir, f'timeline-{scenario}-{vmm}.dat')
        with open(path, 'w') as f:
            f.write('# seconds since migrate, page steps/s, worst stall in the report (ms)\n')
            for t, rate, stall in r['trace']:
                f.write(f'{t:.4f} {rate} {stall:.3f}\n')
        files[vmm] = path
    out = os.path.join(plot_dir, f'timeline-{scenario}.png')
    f, q = runs['frostvm'], runs['qemu']
    gnuplot(os.path.join(bench_dir, 'timeline.gp'), {
        'out': out, 'fdata': files['frostvm'], 'qdata': files['qemu'],
        'fend': round(f['window_s'], 4), 'qend': round(q['window_s'], 4),
        'title': f'Background snapshot, {label}: the guest during it (shaded: frostvm blue, '
                 f'QEMU red)'})
    return f'Guest throughput and worst stall over time, {label} (`{scenario}`)', out


def dirty_point(results, scenario, vmm, twin_bg):
    """(dirty MiB/s, image / non-zero RAM, converged) for one scenario, or None.

    The dirty rate is the guest's page steps per second while the copy ran (each step
    writes one page), or 0 for the idle guest.
    """
    runs = Runs(results, scenario, vmm)
    nonzero = Runs(results, twin_bg, vmm).median(lambda r: r['nonzero_bytes'])
    if not runs.all or not nonzero:
        return None
    pts = []
    for r in runs.all:
        steps = r.get('rate_during', r.get('rate_before'))
        rate = 0.0 if r.get('dirty_rate_mib_s') == 0.0 else \
            (steps * 4096 / 2**20 if steps is not None else None)
        if rate is None:
            continue
        if r.get('ok') and r.get('image_bytes'):
            pts.append((rate, r['image_bytes'] / nonzero, 1))
        elif r.get('status') == 'timeout' and r.get('transferred'):
            pts.append((rate, r['transferred'] / nonzero, 0))
    if not pts:
        return None
    return (statistics.median(p[0] for p in pts), statistics.median(p[1] for p in pts),
            min(p[2] for p in pts))


def dirty_plot(results, plot_dir, data_dir, bench_dir):
    series = {}
    for (bg, pre), label in zip(DIRTY_PLOT, DIRTY_LABELS):
        for vmm in ('frostvm', 'qemu'):
            for kind, s in (('bg', bg), ('precopy', pre)):
                p = dirty_point(results, s, vmm, bg)
                if p:
                    series.setdefault(f'{vmm}-{kind}', []).append(p + (label,))
    if len(series) < 4 or min(len(pts) for pts in series.values()) < 2:
        return None    # needs both VMMs, both kinds, two guests or more (not a quick run)
    files = {}
    for name, pts in series.items():
        path = os.path.join(data_dir, f'dirty-{name}.dat')
        with open(path, 'w') as f:
            f.write('# guest dirty rate (MiB/s), image / non-zero RAM, converged, guest\n')
            for x, y, c, label in sorted(pts):
                f.write(f'{x:.2f} {y:.4f} {c} {label}\n')
        files[name] = path
    out = os.path.join(plot_dir, 'image-vs-dirty-rate.png')
    gnuplot(os.path.join(bench_dir, 'image-vs-dirty.gp'), {
        'out': out, 'fbg': files['frostvm-bg'], 'qbg': files['qemu-bg'],
        'fpre': files['frostvm-precopy'], 'qpre': files['qemu-precopy'],
        'title': '512 MiB guest writing 128 MiB (idle, random order, sequential), sink 100 MiB/s'})
    return 'Image size against guest dirty rate, precopy and background snapshot', out


# The rate plot averages over this window: QEMU's TCG guest reports in bursts (its rate per
# 50 ms report swings between 0 and 125% of its average even when nothing else runs).
SMOOTH_S = 0.5


def write_trace(path, r, column):
    """A run's trace as gnuplot data: seconds, and the rate (column 1, as a share of the
    rate before when the run has one, averaged over SMOOTH_S) or the worst stall (column
    2)."""
    trace = r['trace']
    # The mean before, like the mean plotted (a median would not match a bursty guest's mean).
    pre = [x[1] for x in trace if -2.0 <= x[0] <= 0]
    before = sum(pre) / len(pre) if pre else (r.get('rate_before') or 0)
    with open(path, 'w') as f:
        f.write('# seconds since migrate, ' + (f'share of the rate before ({SMOOTH_S} s mean)'
                                               if column == 1 else 'rate, worst stall (ms)') +
                '\n')
        for t, rate, stall in trace:
            if column == 1:
                near = [x[1] for x in trace if abs(x[0] - t) <= SMOOTH_S / 2]
                mean = sum(near) / len(near) if near else rate
                f.write(f'{t:.4f} {mean / before if before else 0:.4f}\n')
            else:
                f.write(f'{t:.4f} {rate} {stall:.3f}\n')


def stall_plot(results, plot_dir, data_dir, bench_dir):
    """Worst stall per report: frostvm with a 16 MiB pool (and its default pool) beside
    QEMU, all at a 20 MiB/s sink."""
    runs = {'f1': representative(Runs(results, 'bg-20m-pool16', 'frostvm')),
            'f2': representative(Runs(results, 'bg-20m', 'frostvm')),
            'q1': representative(Runs(results, 'bg-20m', 'qemu'))}
    if not (runs['f1'] and runs['q1']):
        return None
    if not runs['f2']:
        runs['f2'] = runs['f1']
    files = {}
    for name, r in runs.items():
        files[name] = os.path.join(data_dir, f'stalls-{name}.dat')
        write_trace(files[name], r, 2)
    out = os.path.join(plot_dir, 'stalls-bg-20m-pool16.png')
    gnuplot(os.path.join(bench_dir, 'stalls.gp'), dict(
        out=out, f1end=round(runs['f1']['window_s'], 4), f2end=round(runs['f2']['window_s'], 4),
        q1end=round(runs['q1']['window_s'], 4),
        title='Worst stall in each report, 20 MiB/s sink: frostvm with a 16 MiB pool (smaller '
              'than the 128 MiB hot set) beside QEMU', **files))
    return 'Worst stall per report, 16 MiB pool at a 20 MiB/s sink, beside QEMU', out


def after_plot(results, plot_dir, data_dir, bench_dir):
    """The guest's rate across and after a snapshot (issue 15), both sinks."""
    vars_ = {}
    for key, (scenario, label) in zip(('a', 'b'), AFTER):
        f = representative(Runs(results, scenario, 'frostvm'))
        q = representative(Runs(results, scenario, 'qemu'))
        if not (f and q):
            return None
        for vmm, r in (('f', f), ('q', q)):
            path = os.path.join(data_dir, f'after-{scenario}-{vmm}.dat')
            write_trace(path, r, 1)
            vars_[f'{vmm}{key}'] = path
            vars_[f'{vmm}{key}_end'] = round(r['window_s'], 4)
        vars_[f'l{key}'] = f'{label} (`{scenario}`)'
    out = os.path.join(plot_dir, 'after-snapshot.png')
    gnuplot(os.path.join(bench_dir, 'after.gp'), dict(
        out=out, title='The guest across and after a background snapshot (rate: 0.5 s mean; '
                       'shaded: the snapshot; dashed: 98%)', **vars_))
    return 'Guest rate across and after a snapshot, share of its rate before', out


def make_all(results, plot_dir, data_dir, bench_dir):
    """Draws every plot the results allow; returns [(title, png path)]."""
    os.makedirs(data_dir, exist_ok=True)
    made = []
    for scenario, label in TIMELINES:
        if scenario not in TITLES:
            continue
        try:
            p = timeline(results, scenario, label, plot_dir, data_dir, bench_dir)
        except RuntimeError as e:
            print(f'bench: {e}')
            p = None
        if p:
            made.append(p)
    for fn in (dirty_plot, stall_plot, after_plot):
        try:
            p = fn(results, plot_dir, data_dir, bench_dir)
        except RuntimeError as e:
            print(f'bench: {e}')
            p = None
        if p:
            made.append(p)
    return made
