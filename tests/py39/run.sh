#!/bin/bash
# Runs the Python 3.9 checks in the Debian 11 root filesystem (rootfs.sh), as root:
#
#   tests/py39/run.sh ROOTFS DEB [SRC]     (SRC: the source tree, default this checkout)
#   tests/py39/run.sh ROOTFS RPM [SRC]     (the .el9 RPM: Python 3.9's site-packages)
#
# Everything happens in a new mount + PID namespace: an overlay over ROOTFS (the cache stays
# as built), with /proc, /dev, /sys and tmpfs /tmp, /run. A .deb is installed with apt-get
# and inside.sh runs the packaged agents (smoke.py) and then the unit and contract tests
# from a copy of SRC. An RPM's payload is unpacked into the root filesystem (rpm2cpio) and
# inside.sh runs the same smoke.py on it; the tests, which import the library from SRC and
# not from the package, run once, with the .deb. When this script ends, the namespace's last
# process ends, the kernel drops every mount, and the PID namespace takes the private libvirtd
# with it: nothing stays mounted or running on the machine.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")

if [ "${1:-}" != --in-namespace ]; then
    [ $# -ge 2 ] || { echo "usage: $0 ROOTFS DEB|RPM [SRC]" >&2; exit 2; }
    rootfs=$(readlink -f "$1") pkg=$(readlink -f "$2") src=$(readlink -f "${3:-$here/../..}")
    [ -f "$rootfs/.vmha-done" ] || { echo "$rootfs: not a root filesystem built by rootfs.sh" >&2; exit 2; }
    [ -f "$pkg" ] || { echo "$pkg: no such package" >&2; exit 2; }
    work=$(mktemp -d /tmp/vmha-py39.XXXXXX)
    trap 'rmdir "$work" 2>/dev/null || true' EXIT
    # --propagation private: no mount made in the namespace reaches the machine's.
    unshare --mount --pid --fork --propagation private --kill-child \
        "$0" --in-namespace "$rootfs" "$pkg" "$src" "$work"
    exit $?
fi

# --- inside the namespace (PID 1's child) -----------------------------------------------
rootfs=$2 pkg=$3 src=$4 work=$5
mount -t tmpfs -o mode=700 vmha-py39 "$work"
mkdir "$work/upper" "$work/work" "$work/root"
mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/upper,workdir=$work/work" "$work/root"
R=$work/root
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount -t tmpfs tmpfs "$R/tmp"
mount -t tmpfs tmpfs "$R/run"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
case $pkg in
*.rpm)
    # The RPM's payload where rpm would put it (rpm2cpio and cpio of this machine: the root
    # filesystem has no rpm), and a .pth so that Debian's python3, which reads dist-packages
    # and not site-packages, finds the library there. The RPM must be the one for this
    # python3 (.el9: /usr/lib/python3.9/site-packages): inside.sh checks that vmha comes
    # from there.
    (cd "$R" && rpm2cpio "$pkg" | cpio -idm --quiet)
    py=$(chroot "$R" /usr/bin/python3 -Ic 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ -d "$R/usr/lib/python$py/site-packages/vmha" ] || {
        echo "$pkg: no /usr/lib/python$py/site-packages/vmha (not the RPM for Python $py)" >&2; exit 1; }
    echo "/usr/lib/python$py/site-packages" > "$R/usr/lib/python3/dist-packages/vmha-rpm.pth"
    ;;
*.deb) ;;
*) echo "$pkg: neither .deb nor .rpm" >&2; exit 2 ;;
esac
cp "$pkg" "$R/tmp/"
# The source tree, without what is this machine's (venv, builds, caches, git).
mkdir "$R/src"
tar -C "$src" -c --exclude=./.venv --exclude=./build --exclude=./.git --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude=.mypy_cache --exclude=.ruff_cache . | tar -x -C "$R/src"
# pcs's OCF 1.1 schema (data, not Python) for the metadata test: Debian 11's pcs is too old
# to have it and would pull in half a distribution.
if [ -f /usr/share/pcs/data/ocf-1.1.rng ]; then
    mkdir -p "$R/usr/share/pcs/data"
    cp /usr/share/pcs/data/ocf-1.1.rng /usr/share/pcs/data/ocf-1.0.rng "$R/usr/share/pcs/data/" 2>/dev/null || true
fi
exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root \
    VMHA_PY39_PYTEST_ARGS="${VMHA_PY39_PYTEST_ARGS:-}" \
    /bin/bash /src/tests/py39/inside.sh "/tmp/$(basename "$pkg")"
