#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs frostvm's build and test dependencies from Debian's archive when run as
# root; otherwise prints the command to run. Does nothing when all are present.
set -e

# Build: compiler, meson/ninja, the libraries frostvm links. Test and bench: QEMU
# (the reference VMM), pv (throttled sinks), gnuplot (plots), python3 (drivers),
# libvirt's daemon, QEMU driver and virsh (the test that libvirt drives frostvm).
PACKAGES="gcc clang binutils make meson ninja-build pkg-config python3
libglib2.0-dev libjson-glib-dev liburing-dev libfdt-dev libxxhash-dev systemtap-sdt-dev
qemu-system-x86 pv gnuplot-nox valgrind libclang-rt-14-dev
libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "frostvm: missing packages:$missing" >&2
    echo "frostvm: install them with: sudo apt-get install$missing" >&2
    exit 1
fi

echo "frostvm: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || apt-get update
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
