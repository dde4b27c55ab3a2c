#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Fails when a tracked file matches no F: glob in MAINTAINERS."""
import fnmatch
import os
import subprocess
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
globs = []
with open(os.path.join(root, 'MAINTAINERS')) as f:
    for line in f:
        if line.startswith('F:'):
            globs.append(line[2:].strip())
try:
    files = subprocess.run(['git', '-C', root, 'ls-files'], check=True,
                           capture_output=True, text=True).stdout.split()
except (OSError, subprocess.CalledProcessError):
    print('check-maintainers: not a git checkout, nothing to check')
    sys.exit(77)
orphans = [p for p in files if not any(fnmatch.fnmatch(p, g) for g in globs)]
for p in orphans:
    print(f'check-maintainers: {p} matches no F: line in MAINTAINERS')
if not files:
    print('check-maintainers: no tracked files')
    sys.exit(77)
print(f'check-maintainers: {len(files)} tracked files, {len(orphans)} unmapped')
sys.exit(1 if orphans else 0)
