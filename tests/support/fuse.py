"""A directory served through a FUSE file system (bindfs, the lab's storage path) whose I/O
can be made to fail or to hang: what a host sees of shared storage whose path is cut or hung
(the lab's vmha.lab.storage does the same per host)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


@dataclass
class Path:
    mountpoint: str
    proc: subprocess.Popen[bytes]

    def hang(self) -> None:
        """I/O through the mount never returns (until ``thaw``)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def cut(self) -> None:
        """I/O through the mount fails from now on (ENOTCONN)."""
        self.proc.kill()
        self.proc.wait()


@contextmanager
def served(backing: str, mountpoint: str) -> Iterator[Path]:
    """``backing`` seen at ``mountpoint`` through bindfs; skips without root, bindfs or
    /dev/fuse.  Unmounted afterwards, whatever state the test left it in."""
    if os.geteuid() != 0 or shutil.which("bindfs") is None or not os.path.exists("/dev/fuse"):
        pytest.skip("needs root, bindfs and /dev/fuse (make test installs bindfs)")
    os.makedirs(mountpoint, exist_ok=True)
    proc = subprocess.Popen(["bindfs", "-f", "--no-allow-other", backing, mountpoint], stdin=subprocess.DEVNULL)
    path = Path(mountpoint, proc)
    try:
        end = time.monotonic() + 10
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail(f"bindfs did not mount {mountpoint} (rc {proc.poll()})")
            time.sleep(0.05)
        yield path
    finally:
        if proc.poll() is None:
            proc.kill()  # a stopped process takes SIGKILL too; its requests then fail
            proc.wait()
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
