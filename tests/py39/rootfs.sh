#!/bin/bash
# Builds (once) the Debian 11 root filesystem the Python 3.9 tests run in, and prints its path.
#
#   tests/py39/rootfs.sh [CACHE_DIR]      (default /var/cache/vmha/py39)
#
# The cache is keyed by packages.txt, requirements.txt and this script: a change to any of
# them builds a new one (about 40 s: mmdebstrap + pip) and removes the old ones. The root
# filesystem is never modified afterwards: run.sh mounts an overlay over it.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
cache=${1:-/var/cache/vmha/py39}
# The pip that downloads the wheels (this machine's: it has the network's certificates).
pip=${VMHA_PY39_PIP:-$here/../../.venv/bin/pip}
mirror=${VMHA_PY39_MIRROR:-http://deb.debian.org/debian}
suite=bullseye

key=$(cat "$here/packages.txt" "$here/requirements.txt" "$here/rootfs.sh" | sha256sum | cut -c1-16)
root=$cache/rootfs-$key
if [ -f "$root/.vmha-done" ]; then
    echo "$root"
    exit 0
fi
command -v mmdebstrap >/dev/null || {
    echo "installing mmdebstrap" >&2
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
}
mkdir -p "$cache"
rm -rf "$cache"/rootfs-*
packages=$(sed -e 's/#.*//' "$here/packages.txt" | xargs | tr ' ' ,)
echo "building the Debian 11 root filesystem in $root" >&2
start=$(date +%s)
wheels=$cache/wheels
rm -rf "$wheels"
"$pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.9 \
    --implementation cp --abi cp39 --platform manylinux2014_x86_64 -d "$wheels" -r "$here/requirements.txt" >&2
# --skip=cleanup/apt/lists: run.sh installs the .deb with apt-get, which resolves its
# dependencies from these lists (all of them are already installed: nothing is downloaded).
# The users libvirt-daemon-system would create (and systemd with it): without libvirt-qemu,
# Debian 11's libvirtd fails to initialise its QEMU driver and exits, test driver and all.
mmdebstrap --variant=apt --include="$packages" --skip=cleanup/apt/lists \
    --customize-hook='chroot "$1" addgroup --quiet --system kvm' \
    --customize-hook='chroot "$1" adduser --quiet --system --group --no-create-home --home /var/lib/libvirt libvirt-qemu' \
    --customize-hook='chroot "$1" adduser --quiet libvirt-qemu kvm' \
    --customize-hook='chroot "$1" /usr/bin/python3 -m venv --system-site-packages /opt/py39-venv' \
    --customize-hook="copy-in $here/requirements.txt $wheels /opt" \
    --customize-hook='chroot "$1" /opt/py39-venv/bin/pip install -q --no-cache-dir --disable-pip-version-check --no-index --find-links /opt/wheels -r /opt/requirements.txt' \
    --customize-hook='rm -rf "$1/opt/wheels"' \
    "$suite" "$root.tmp" "$mirror" >&2
touch "$root.tmp/.vmha-done"
mv "$root.tmp" "$root"
echo "root filesystem built in $(($(date +%s) - start)) s" >&2
echo "$root"
