"""The lab's guest: a Debian kernel booted directly, with a busybox initramfs.

Built from Debian packages on this machine and cached under ``/var/lib/vmha/lab/image``
(rebuilt only when missing):

- ``vmlinux``: the uncompressed kernel pulled out of the packaged vmlinuz.  QEMU boots it
  through its PVH entry and skips the in-guest decompression, which under TCG is half the
  boot (5 s instead of 10 s to init).
- ``initrd.gz``: busybox-static, the virtio console and network modules, the QEMU guest
  agent copied with its shared libraries, PostgreSQL's service script for a guest given a
  database disk (vmha.lab.dbdisk), and an ``/init`` that starts the agent, gives eth0
  the address from ``vmha.ip=`` on the kernel command line, starts a busybox httpd (the
  "service" inside the guest) and the disk writer (``vmha.lab.writes``), then prints ticks
  on the serial console.
"""

from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from vmha.lab import dbdisk, writes
from vmha.ocf.runner import CommandRunner

KERNEL_META_PACKAGE = "linux-image-amd64"
BUSYBOX = "/bin/busybox"
QEMU_GA = "/usr/sbin/qemu-ga"
# load order matters: virtio_ring before virtio (no modprobe/depmod in the guest)
MODULES = (
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/char/virtio_console.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "drivers/block/virtio_blk.ko",
    "drivers/acpi/button.ko",
    "drivers/input/evdev.ko",
    # ext4, for a database disk (vmha.lab.dbdisk): loaded by its service script, not at boot
    "lib/crc16.ko",
    "fs/mbcache.ko",
    "fs/jbd2/jbd2.ko",
    "crypto/crc32c_generic.ko",
    "fs/ext4/ext4.ko",
)
# bump when the image's content changes: a cached image of another build is rebuilt
IMAGE_BUILD = "8"
XZ_MAGIC = b"\xfd7zXZ\x00"
HTTP_PORT = 80
READY_MARK = "GUEST-READY"
# Debian packages the lab needs on the machine (the Makefile installs them)
DEBIAN_PACKAGES = (
    "pacemaker",
    "corosync",
    "pcs",
    "pacemaker-cli-utils",
    "resource-agents",
    "fence-agents",
    "libvirt-daemon-system",
    "libvirt-clients",
    "qemu-system-x86",
    "python3-libvirt",
    "python3-lxml",
    "busybox-static",
    "qemu-guest-agent",
    "util-linux",
    "iproute2",
    "curl",
    "bindfs",
)

INIT_SCRIPT = f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mkdir -p /run/qga /var/run /www
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console \
    failover net_failover virtio_net virtio_blk button evdev; do
  insmod /lib/modules/$m.ko || echo "insmod $m failed"
done
# no udev: find the guest agent's port by its name in sysfs
for i in 1 2 3 4 5 6 7 8 9 10; do ls /sys/class/virtio-ports/*/name >/dev/null 2>&1 && break; sleep 0.2; done
for p in /sys/class/virtio-ports/*; do
  [ -e "$p/name" ] || continue
  if [ "$(cat $p/name)" = org.qemu.guest_agent.0 ]; then
    /usr/sbin/qemu-ga -m virtio-serial -p /dev/$(basename $p) -t /run/qga -f /run/qga/qemu-ga.pid >/dev/console 2>&1 &
  fi
done
# a clean shutdown request (ACPI power button, or qemu-ga's guest-shutdown which runs
# /sbin/shutdown) powers the guest off at once, so a graceful stop does not wait for a timeout
for e in /sys/class/input/event*; do
  if [ "$(cat $e/device/name 2>/dev/null)" = "Power Button" ]; then
    # evdev only hands out whole events (24 bytes on x86_64): a shorter read fails at once
    (dd if=/dev/input/$(basename $e) of=/dev/null bs=24 count=1 2>/dev/null &&
      {{ echo GUEST-POWEROFF; poweroff -f; }}) &
  fi
done
ip link set lo up
# the guest's address comes from the kernel command line (vmha.ip=A.B.C.D, a /24)
for w in $(cat /proc/cmdline); do
  case "$w" in vmha.ip=*) ip addr add "${{w#vmha.ip=}}/24" dev eth0 && ip link set eth0 up;; esac
done
echo "vmha lab guest $(hostname)" > /www/index.html
httpd -p {HTTP_PORT} -h /www
echo "{READY_MARK} uptime=$(cut -d' ' -f1 /proc/uptime)"
# the disk writer (vmha.lab.writes): numbered records on the shared disk, each reported on
# the console only once the disk has it (an O_DIRECT write, then a flush); at boot it says
# the newest record it finds, and numbering goes on from there
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.2; done
if [ -b /dev/vda ]; then
  n=$(dd if=/dev/vda bs=512 count={writes.SLOTS} iflag=direct 2>/dev/null | strings |
    sed -n 's/^{writes.RECORD} \\([0-9][0-9]*\\)$/\\1/p' | sort -n | tail -n 1)
  n=${{n:-0}}
  echo "{writes.FOUND} $n"
  (while true; do
    n=$((n+1))
    if printf '{writes.RECORD} %d\\n' $n | dd of=/dev/vda bs=512 seek=$((n % {writes.SLOTS})) count=1 \
        iflag=fullblock oflag=direct conv=sync,notrunc,fsync 2>/dev/null; then
      echo "{writes.ACK} $n"
    else
      echo "{writes.FAILED} $n"; n=$((n-1))
    fi
    sleep {writes.INTERVAL_S}
  done) &
fi
i=0
while true; do i=$((i+1)); echo "tick $i $(cut -d' ' -f1 /proc/uptime)"; sleep 5; done
"""


SHUTDOWN_SCRIPT = """#!/bin/sh
echo GUEST-POWEROFF >/dev/console
sync
poweroff -f
"""


@dataclass(frozen=True)
class GuestImage:
    kernel: str
    initrd: str
    kernel_version: str


class ImageError(Exception):
    pass


def ensure(image_dir: str, runner: CommandRunner, log: Callable[[str], None] = lambda _m: None) -> GuestImage:
    """The cached image, built first if missing. Raises ImageError."""
    img = GuestImage(os.path.join(image_dir, "vmlinux"), os.path.join(image_dir, "initrd.gz"), "")
    version_file = os.path.join(image_dir, "kernel-version")
    if all(os.path.exists(p) for p in (img.kernel, img.initrd, version_file)):
        with open(version_file) as f:
            version, _, build = f.read().strip().partition(" build ")
        if build == IMAGE_BUILD:
            return GuestImage(img.kernel, img.initrd, version)
    log(f"building the guest image in {image_dir}")
    os.makedirs(image_dir, mode=0o755, exist_ok=True)
    for d in (os.path.dirname(image_dir), image_dir):
        os.chmod(d, 0o755)  # noqa: S103 - QEMU runs as libvirt-qemu and must reach the files
    with tempfile.TemporaryDirectory(prefix="vmha-image-") as work:
        version, tree = _unpack_kernel(runner, work)
        vmlinux = extract_vmlinux(os.path.join(tree, "boot", f"vmlinuz-{version}"))
        _write(img.kernel + ".tmp", vmlinux)
        modules = os.path.join(tree, "lib", "modules", version, "kernel")
        _write(img.initrd + ".tmp", gzip.compress(build_initramfs(runner, modules), 1))
    os.replace(img.kernel + ".tmp", img.kernel)
    os.replace(img.initrd + ".tmp", img.initrd)
    with open(version_file, "w") as f:
        f.write(f"{version} build {IMAGE_BUILD}\n")
    return GuestImage(img.kernel, img.initrd, version)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def kernel_package(runner: CommandRunner) -> str:
    """The versioned package the ``linux-image-amd64`` meta package depends on."""
    out = runner.run(["apt-cache", "depends", KERNEL_META_PACKAGE], timeout=60).stdout
    for raw in out.splitlines():
        line = raw.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split(":", 1)[1].strip()
    raise ImageError(f"cannot tell which kernel {KERNEL_META_PACKAGE} depends on")


def _unpack_kernel(runner: CommandRunner, work: str) -> tuple[str, str]:
    pkg = kernel_package(runner)
    version = pkg.removeprefix("linux-image-")
    cached = [f for f in os.listdir("/var/cache/apt/archives") if f.startswith(pkg + "_")]
    if cached:
        deb = os.path.join("/var/cache/apt/archives", cached[0])
    else:
        # apt-get download writes into the current directory only
        with contextlib.chdir(work):
            done = runner.run(["apt-get", "download", pkg], timeout=600)
        debs = [f for f in os.listdir(work) if f.endswith(".deb")]
        if not done.ok or not debs:
            raise ImageError(f"apt-get download {pkg} failed: {done.stderr.strip()}")
        deb = os.path.join(work, debs[0])
    tree = os.path.join(work, "kernel")
    done = runner.run(["dpkg-deb", "-x", deb, tree], timeout=300)
    if not done.ok:
        raise ImageError(f"dpkg-deb -x {deb} failed: {done.stderr.strip()}")
    return version, tree


def extract_vmlinux(vmlinuz: str) -> bytes:
    """The ELF kernel inside a bzImage whose payload is xz (Debian's choice)."""
    with open(vmlinuz, "rb") as f:
        data = f.read()
    offset = data.find(XZ_MAGIC)
    if offset < 0:
        raise ImageError(f"{vmlinuz}: no xz payload found")
    out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[offset:])
    if not out.startswith(b"\x7fELF"):
        raise ImageError(f"{vmlinuz}: the xz payload is not an ELF kernel")
    return out


class Cpio:
    """A ``newc`` cpio archive, which is what the kernel unpacks as an initramfs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1
        self._seen: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        name = name.lstrip("/") or "."
        if name in self._seen:
            return
        self._seen.add(name)
        encoded = name.encode() + b"\0"
        header = b"070701" + b"".join(
            b"%08X" % v for v in (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        )
        self._ino += 1
        self._parts += [header, encoded, b"\0" * (-(110 + len(encoded)) % 4), data, b"\0" * (-len(data) % 4)]

    def directory(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.directory(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self._parts)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def shared_libraries(runner: CommandRunner, binary: str) -> list[str]:
    """Absolute paths of the libraries (and loader) ``binary`` needs, from ldd."""
    out = runner.run(["ldd", binary], timeout=30).stdout
    libs = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                libs.append(word)
    return libs


def build_initramfs(runner: CommandRunner, module_dir: str) -> bytes:
    if not os.path.exists(BUSYBOX) or not os.path.exists(QEMU_GA):
        raise ImageError("busybox-static and qemu-guest-agent must be installed")
    cpio = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc", "var", "lib/modules", "usr/sbin", "usr/bin"):
        cpio.directory(d)
    cpio.file("bin/busybox", _read(BUSYBOX), 0o755)
    applets = runner.run([BUSYBOX, "--list"], timeout=30).stdout.split()
    for applet in applets:
        if applet != "busybox":
            cpio.symlink(f"bin/{applet}", "busybox")
    for rel in MODULES:
        cpio.file(f"lib/modules/{os.path.basename(rel)}", _read(os.path.join(module_dir, rel)))
    cpio.file("usr/sbin/qemu-ga", _read(QEMU_GA), 0o755)
    for lib in shared_libraries(runner, QEMU_GA):
        cpio.file(lib, _read(os.path.realpath(lib)), 0o755)
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    cpio.file("sbin/shutdown", SHUTDOWN_SCRIPT.encode(), 0o755)
    # PostgreSQL's service script, for a guest given a database disk (vmha.lab.dbdisk)
    cpio.file(dbdisk.GUEST_SCRIPT_PATH.lstrip("/"), dbdisk.GUEST_SCRIPT.encode(), 0o755)
    return cpio.finish()


def remove(image_dir: str) -> None:
    shutil.rmtree(image_dir, ignore_errors=True)
