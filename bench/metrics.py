# SPDX-License-Identifier: GPL-2.0-or-later
"""Guest-side figures from the payload's PROGRESS lines, and small statistics helpers."""
import statistics


def guest_clock_offset(lines):
    """Seconds to subtract from a monotonic time to get the payload's t_us / 1e6.

    A line is seen by the tailer some time after the guest wrote it, never before, so the
    smallest (seen - t_us) over many lines is the closest estimate of the offset.
    """
    if not lines:
        return None
    return min(p['wall'] - p['t_us'] / 1e6 for p in lines)


def line_stall_ms(p, prev, report_ms):
    """The longest stall a report shows: its maxstall_us, or how late it came.

    The payload leaves its own serial output out of maxstall_us, so a pause that lands
    while it prints (a port I/O exit) shows only as a report that comes late.
    """
    late = (p['t_us'] - prev['t_us']) / 1000 - report_ms - LATE_SLACK_MS
    return max(p['maxstall_us'] / 1000, late)


LATE_SLACK_MS = 3.0   # a report takes about 1.5 ms of port I/O here


def window_figures(lines, g0, g1, report_ms, before_s=2.0):
    """Throughput kept and stalls for the guest-time window [g0, g1] (seconds).

    Each PROGRESS line covers the interval since the previous line. "before" lines end
    at most before_s before g0 and not after it; "during" lines overlap the window.
    The kept share is the median rate of the lines that lie at least half inside the
    window (or the one that overlaps most) over the median rate before. The worst stall
    is the largest maxstall_us of any line that overlaps the window at all.
    """
    before, during = [], []
    prev = None
    for p in lines:
        if prev is not None:
            a, b = prev['t_us'] / 1e6, p['t_us'] / 1e6
            p = dict(p, stall_ms=line_stall_ms(p, prev, report_ms))
            if b <= g0 and b >= g0 - before_s:
                before.append(p)
            overlap = min(b, g1) - max(a, g0)
            if overlap > 0 and b > a:
                during.append((overlap / (b - a), p))
        prev = p
    out = {'before_lines': len(before), 'during_lines': len(during)}
    if before:
        out['rate_before'] = statistics.median(p['rate'] for p in before)
        out['stall_before_ms'] = max(p['stall_ms'] for p in before)
    if during:
        core = [p for frac, p in during if frac >= 0.5]
        if not core:
            core = [max(during, key=lambda fp: fp[0])[1]]
        out['rate_during'] = statistics.median(p['rate'] for p in core)
        stalls = sorted(p['stall_ms'] for _, p in during)
        out['stall_ms'] = stalls[-1]
        out['stall_p50_ms'] = percentile(stalls, 50)
        out['stall_p90_ms'] = percentile(stalls, 90)
        out['stalls_over_1ms'] = sum(1 for s in stalls if s > 1)
        out['stalls_over_10ms'] = sum(1 for s in stalls if s > 10)
    if out.get('rate_before') and 'rate_during' in out:
        out['kept'] = out['rate_during'] / out['rate_before']
    return out


def after_figures(lines, g1, after_s):
    """The guest's rate after a run ended at guest time g1 (seconds): the median rate of
    the reports wholly inside [g1, g1 + 1), [g1 + 1, g1 + 2) and [g1 + 5, g1 + 6) (those
    the watch covers), as 'rate_after': {'0s': ..., '1s': ..., '5s': ...}; and the median
    of every report from 1 s on, 'rate_from_1s'."""
    out = {}
    windows = {'0s': (0, 1), '1s': (1, 2), '5s': (5, 6)}
    prev = None
    inside = {k: [] for k in windows}
    from_1s = []
    for p in lines:
        if prev is not None:
            a, b = prev['t_us'] / 1e6 - g1, p['t_us'] / 1e6 - g1
            for k, (lo, hi) in windows.items():
                if a >= lo and b <= hi:
                    inside[k].append(p['rate'])
            if a >= 1 and b <= after_s:
                from_1s.append(p['rate'])
        prev = p
    out['rate_after'] = {k: statistics.median(v) for k, v in inside.items() if v}
    if from_1s:
        out['rate_from_1s'] = statistics.median(from_1s)
    return out


def percentile(sorted_values, pct):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(pct / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summarize(values):
    """(median, min, max) of the numbers in values, or None when there are none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def num(v, digits=None):
    """A number with as many decimals as its size deserves."""
    if v is None:
        return '-'
    if digits is None:
        a = abs(v)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2
    return f'{v:,.{digits}f}'


class Runs:
    """The runs of one scenario on one VMM."""

    def __init__(self, results, scenario, vmm, restore=False):
        self.all = [r for r in results if r['scenario'] == scenario and r['vmm'] == vmm
                    and (r['kind'] == 'restore') == restore]
        # Tables that give the reason once, in their "runs completed" row.
        self.brief_failures = False
        self.ok = [r for r in self.all if r.get('ok')]
        self.failed = [r for r in self.all if not r.get('ok')]

    def values(self, fn):
        out = []
        for r in self.ok:
            try:
                v = fn(r)
            except (KeyError, TypeError, ZeroDivisionError):
                v = None
            if v is not None:
                out.append(v)
        return out

    def median(self, fn):
        s = summarize(self.values(fn))
        return s[0] if s else None

    def cell(self, fn, fmt=num):
        if not self.all:
            return 'not run'
        if not self.ok:
            return 'failed' if self.brief_failures else 'failed: ' + reason(self.failed[0])
        s = summarize(self.values(fn))
        if s is None:
            text = '-'
        elif len(self.values(fn)) > 1:
            text = f'{fmt(s[0])} ({fmt(s[1])}-{fmt(s[2])})'
        else:
            text = fmt(s[0])
        if self.failed:
            text += (f' ({len(self.failed)} of {len(self.all)} failed)' if self.brief_failures
                     else f' ({len(self.failed)} of {len(self.all)} failed: '
                          f'{reason(self.failed[0])})')
        return text

    def completed(self):
        """'2 of 3', with the reason of the first failure."""
        text = f'{len(self.ok)} of {len(self.all)}'
        if self.failed:
            text += f' (failed: {reason(self.failed[0])})'
        return text


def reason(r):
    """Why a run failed, fit for a table cell."""
    return (r.get('reason') or r.get('status') or 'unknown').replace('|', '/')
