"""A private libvirtd that runs real QEMU (TCG) guests, for tests: nothing of the machine's own
libvirt is seen or touched, and it cannot see another test's or the lab's libvirt state.

``qemu_libvirtd(directory)`` yields its socket path (connect with
``qemu+unix:///system?socket=<path>``).  The daemon runs under ``unshare -m`` (this file, as a
script): in that private mount namespace tmpfs goes over libvirt's state directories, a copy
of /etc/libvirt without any domain or network of the machine goes over /etc/libvirt, and an
empty 0600 file over /dev/kvm.  That last one matters: a /dev/kvm that root can open but
libvirt's QEMU user cannot makes libvirt re-probe QEMU's capabilities at every start (~28 s);
hidden, both agree there is no KVM and guests are TCG.  ``namespaces = [ ]`` in qemu.conf keeps
QEMU in that namespace (a private /dev per QEMU would try to carry the bind over and fail);
``cgroup_controllers = [ ]``: no systemd here to delegate them; ``stdio_handler = "file"``: no virtlogd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

STATE_DIRS = ("/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt")
KVM = "/dev/kvm"
START_TIMEOUT_S = 20


def _private_etc(directory: str) -> str:
    etc = os.path.join(directory, "etc")
    shutil.copytree("/etc/libvirt", etc, symlinks=True)
    for sub in ("qemu", "qemu/autostart", "qemu/networks", "qemu/networks/autostart", "storage", "storage/autostart"):
        d = os.path.join(etc, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                path = os.path.join(d, name)
                if name.endswith(".xml") and not os.path.isdir(path):
                    os.unlink(path)
    sock_dir = os.path.join(directory, "sock")
    os.makedirs(sock_dir, exist_ok=True)
    with open(os.path.join(etc, "libvirtd.conf"), "a") as fh:
        fh.write(
            "\n# vmha tests: a private daemon on a private socket\n"
            f'unix_sock_dir = "{sock_dir}"\nunix_sock_rw_perms = "0700"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\nlisten_tcp = 0\nlisten_tls = 0\n'
            f'log_outputs = "3:file:{directory}/libvirtd.log"\n'
        )
    with open(os.path.join(etc, "qemu.conf"), "a") as fh:
        fh.write(
            "\n# vmha tests\n"
            'namespaces = [ ]\ncgroup_controllers = [ ]\nsecurity_driver = "none"\nstdio_handler = "file"\n'
        )
    return etc


def _in_namespace(directory: str) -> None:
    """Runs inside ``unshare -m --propagation private``: mounts, then execs libvirtd."""
    etc = os.path.join(directory, "etc")
    for d in STATE_DIRS:
        os.makedirs(d, exist_ok=True)
        subprocess.run(["/bin/mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", d], check=True)
    subprocess.run(["/bin/mount", "--bind", etc, "/etc/libvirt"], check=True)
    if os.path.exists(KVM):
        hidden = os.path.join(directory, "no-kvm")
        with open(hidden, "w"):
            pass
        os.chmod(hidden, 0o600)
        subprocess.run(["/bin/mount", "--bind", hidden, KVM], check=True)
    argv = ["/usr/sbin/libvirtd", "--pid-file", os.path.join(directory, "libvirtd.pid")]
    os.execv(argv[0], argv)  # noqa: S606 - an argument list, no shell


@contextmanager
def qemu_libvirtd(directory: str) -> Iterator[str]:
    """Yields the daemon's unix socket path; the daemon (and its QEMUs) die with the context."""
    # here, not at the top: this file also runs alone as the daemon's namespace script
    from tests.support.libvirtd import stop_session, wait_for_socket

    _private_etc(directory)
    log = open(os.path.join(directory, "daemon.out"), "w")
    proc = subprocess.Popen(
        ["/usr/bin/unshare", "-m", "--propagation", "private", sys.executable, "-I", __file__, directory],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    sock = os.path.join(directory, "sock", "libvirt-sock")
    try:
        wait_for_socket(proc, sock, log.name, START_TIMEOUT_S)
        yield sock
    finally:
        stop_session(proc, 15.0)
        log.close()


if __name__ == "__main__":
    _in_namespace(sys.argv[1])
