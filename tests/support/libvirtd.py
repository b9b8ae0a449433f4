"""Start and stop a private libvirtd (see privlibvirtd.py) for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))


@contextmanager
def private_libvirtd(directory: str) -> Iterator[str]:
    """Yields the daemon's unix socket path; the daemon dies with the context."""
    sock_dir = os.path.join(directory, "sock")
    os.makedirs(sock_dir, exist_ok=True)
    with open(os.path.join(directory, "libvirtd.conf"), "w") as fh:
        fh.write(
            f'unix_sock_dir = "{sock_dir}"\n'
            'unix_sock_rw_perms = "0700"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            f'log_outputs = "3:file:{directory}/libvirtd.log"\n'
        )
    log = open(os.path.join(directory, "daemon.out"), "w")
    proc = subprocess.Popen(
        [
            "/usr/bin/unshare",
            "-m",
            "--propagation",
            "private",
            "/usr/bin/python3",
            os.path.join(HERE, "privlibvirtd.py"),
            directory,
        ],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    sock = os.path.join(sock_dir, "libvirt-sock")
    try:
        wait_for_socket(proc, sock, log.name, 10.0)
        yield sock
    finally:
        stop_session(proc, 10.0)
        log.close()


def wait_for_socket(proc: subprocess.Popen[bytes], sock: str, log_path: str, timeout: float) -> None:
    """Until the daemon ``proc`` listens on ``sock``; RuntimeError with its log's tail when
    it exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(sock) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not os.path.exists(sock):
        with open(log_path) as fh:
            raise RuntimeError(f"private libvirtd did not start: {fh.read()[-2000:]}")


def stop_session(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the daemon's whole session (its children too), SIGKILL after ``grace``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
