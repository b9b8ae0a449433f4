"""A private libvirtd for tests: its own /run/libvirt, /var/lib/libvirt, ... and a socket in a
directory of the test's choosing, so tests share state between processes through libvirt's
test driver (test+unix:///default?socket=...) without touching the host's libvirt.

Run as: unshare -m --propagation private /usr/bin/python3 privlibvirtd.py DIR
(it mounts tmpfs over libvirt's state directories inside that mount namespace, then execs
libvirtd in the foreground).
"""

from __future__ import annotations

import os
import subprocess
import sys

STATE_DIRS = ("/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt")


def main(directory: str) -> None:
    for d in STATE_DIRS:
        os.makedirs(d, exist_ok=True)
        subprocess.run(["/bin/mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", d], check=True)
    conf = os.path.join(directory, "libvirtd.conf")
    argv = ["/usr/sbin/libvirtd", "--config", conf, "--pid-file", os.path.join(directory, "libvirtd.pid")]
    os.execv(argv[0], argv)  # noqa: S606 - an argument list, no shell


if __name__ == "__main__":
    main(sys.argv[1])
