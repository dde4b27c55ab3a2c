# SPDX-License-Identifier: GPL-2.0-or-later
"""Reserving 2 MiB huge pages for a while (vm.nr_hugepages, root only) and giving them back.

Used by the test runner (the hugetlbfs cases) and the benchmark (hugetlb-backed guests).
"""
import os
import subprocess
import tempfile

NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages'


class HugePagesError(Exception):
    """The pages could not be reserved; the message says why."""


def free_huge_pages():
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('HugePages_Free:'):
                return int(line.split()[1])
    return 0


def reserve_huge_pages(n):
    """Makes at least n huge pages free by raising vm.nr_hugepages. Returns the value to
    give to release_huge_pages() afterwards, None when enough were free already."""
    missing = n - free_huge_pages()
    if missing <= 0:
        return None
    try:
        with open(NR_HUGEPAGES) as f:
            old = int(f.read())
        with open(NR_HUGEPAGES, 'w') as f:
            f.write(str(old + missing))
    except (OSError, ValueError) as e:
        raise HugePagesError(f'needs {n} free 2 MiB huge pages and cannot reserve them ({e})')
    if free_huge_pages() < n:
        release_huge_pages(old)
        raise HugePagesError(f'needs {n} free 2 MiB huge pages; the kernel found only '
                             f'{free_huge_pages()} (memory too fragmented?)')
    return old


def release_huge_pages(old):
    """Puts vm.nr_hugepages back to what reserve_huge_pages() returned (None: nothing)."""
    if old is not None:
        with open(NR_HUGEPAGES, 'w') as f:
            f.write(str(old))


def hugetlbfs_mounted():
    with open('/proc/mounts') as f:
        return any(line.split()[2:3] == ['hugetlbfs'] for line in f)


def mount_hugetlbfs():
    """As root, mounts a hugetlbfs on a fresh temporary directory when none is mounted;
    returns the directory to give to unmount_hugetlbfs(), or None (nothing done)."""
    if os.geteuid() != 0 or hugetlbfs_mounted():
        return None
    path = tempfile.mkdtemp(prefix='frostvm-hugetlbfs-')
    r = subprocess.run(['mount', '-t', 'hugetlbfs', 'none', path], capture_output=True)
    if r.returncode != 0:
        os.rmdir(path)
        return None
    return path


def unmount_hugetlbfs(path):
    """Undoes mount_hugetlbfs(). Lazily: a test killed with a file still open there must
    not keep the huge pages from being given back afterwards."""
    if path is not None:
        subprocess.run(['umount', '-l', path], capture_output=True)
        try:
            os.rmdir(path)
        except OSError:
            pass
