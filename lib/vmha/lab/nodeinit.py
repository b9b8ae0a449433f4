"""PID 1 of a lab host: private mounts, then libvirt, corosync and pacemaker.

Runs inside fresh mount/UTS/IPC/PID namespaces (started by the power switch) in the host's
network namespace.  As PID 1 it must reap orphans (daemons that double-fork, QEMU after a
libvirtd restart) and it ignores signals it has no handler for, which is why SIGKILL from
the machine is the only way to pull the plug.  SIGTERM is a clean shutdown: pacemaker
first (it stops or moves its resources), then corosync, then libvirt.  When this process
exits the kernel kills whatever is left in the host, QEMU included.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from vmha.lab import storage
from vmha.lab.config import HOST_MARKER, LAB_POOL_DIR, LAB_POOL_MIB, LabPaths
from vmha.lab.nodefiles import BIND_DIRS, BIND_FILES, bind_source
from vmha.ocf.runner import CommandError, CommandRunner, find_program

LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
KVM_DEVICE = "/dev/kvm"
DAEMON_READY_TIMEOUT_S = 30.0
PACEMAKER_STOP_TIMEOUT_S = 120.0


class Stop(Exception):
    """SIGTERM/SIGINT arrived: shut the host down cleanly."""


def daemon_env() -> dict[str, str]:
    # daemons (and the resource agents pacemaker-execd runs) must not see the lab's own
    # PYTHONPATH: the agent under test imports the installed vmha, not this checkout
    keep = ("PATH", "LANG", "LC_ALL", "TERM")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def setup_mounts(runner: CommandRunner, paths: LabPaths, name: str) -> None:
    def must(argv: list[str]) -> None:
        runner.run(argv, timeout=10).checked()

    node_dir = paths.node_dir(name)
    must(["hostname", name])
    must(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"])
    must(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm"])  # noqa: S108
    for target in (*BIND_DIRS, *BIND_FILES):
        must(["mount", "--bind", bind_source(node_dir, target), "/" + target])
    # the host's storage pool: its own small filesystem, so filling it touches nothing else
    must(["mount", "-t", "tmpfs", "-o", f"size={LAB_POOL_MIB}m,mode=711", "tmpfs", LAB_POOL_DIR])
    if os.path.exists(KVM_DEVICE):
        # Lab guests are TCG.  A /dev/kvm that QEMU's capability probe can open but the
        # QEMU user cannot makes libvirt judge its cached capabilities stale at every
        # lookup and probe again: ~28 s per domain start.  Hidden, both agree: no KVM.
        hidden = os.path.join(node_dir, "no-kvm")
        with open(hidden, "w"):
            pass
        os.chmod(hidden, 0o600)
        must(["mount", "--bind", hidden, KVM_DEVICE])
    hacluster = _ids("hacluster", "haclient")
    for d, mode, owner in (
        ("/run/lock", 0o1777, None),
        ("/run/crm", 0o750, hacluster),
        ("/run/resource-agents", 0o1755, None),
        ("/run/fence-agents", 0o1755, None),
        ("/run/libvirt", 0o755, None),
    ):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, mode)
        if owner:
            os.chown(d, *owner)
    os.symlink("/dev/shm", "/run/shm")  # noqa: S108 - the Debian layout
    must(["ip", "link", "set", "lo", "up"])
    # the host's own path to the shared storage (vmha.lab.storage)
    storage.mount_path(paths.storage_dir, paths.shared_dir)
    # last: from now on /proc/<this pid>/root/run is this host's own /run (see proc.host_root)
    with open(HOST_MARKER, "w") as f:
        f.write(name + "\n")


def _ids(user: str, group: str) -> tuple[int, int]:
    import grp
    import pwd

    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        reap()
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s")


def libvirt_answers() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(LIBVIRT_SOCKET)
        except OSError:
            return False
    return True


def start_libvirt(runner: CommandRunner) -> None:
    """virtlockd, virtlogd and libvirtd daemonise themselves (pid files in our private /run).
    virtlockd first: libvirtd's lock manager (qemu.conf ``lock_manager``) connects to it,
    and it holds the disk leases on behalf of the host's QEMU processes."""
    for argv in (["virtlockd", "-d"], ["virtlogd", "-d"], ["libvirtd", "-d", "--listen"]):
        done = runner.run(argv, timeout=30)
        if not done.ok:
            raise RuntimeError(f"{argv[0]} failed to start: {done.stderr.strip()}")
    wait_for(libvirt_answers, DAEMON_READY_TIMEOUT_S, "libvirtd")


def start_cluster(runner: CommandRunner) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    env = daemon_env()
    with open("/var/log/corosync/stdout.log", "ab") as out:
        corosync = subprocess.Popen(
            [find_program("corosync"), "-f"], stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
    wait_for(lambda: runner.run(["corosync-cfgtool", "-s"], timeout=5).ok, DAEMON_READY_TIMEOUT_S, "corosync")
    env["PCMK_logfile"] = "/var/log/pacemaker/pacemaker.log"
    with open("/var/log/pacemaker/stdout.log", "ab") as out:
        pacemakerd = subprocess.Popen(
            [find_program("pacemakerd")], stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
    return corosync, pacemakerd


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_exit(p: subprocess.Popen[bytes], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.poll() is not None:
            return True
        reap()
        time.sleep(0.1)
    return p.poll() is not None


def shutdown(runner: CommandRunner, daemons: tuple[subprocess.Popen[bytes], ...], paths: LabPaths) -> None:
    if daemons:
        corosync, pacemakerd = daemons
        try:
            runner.run(["pacemakerd", "--shutdown"], timeout=PACEMAKER_STOP_TIMEOUT_S)
        except CommandError as exc:  # shutting down regardless: the kernel ends the rest
            print(f"pacemakerd --shutdown: {exc}", flush=True)
        wait_exit(pacemakerd, PACEMAKER_STOP_TIMEOUT_S)
        corosync.terminate()
        wait_exit(corosync, 10)
    for pidfile in ("/run/libvirtd.pid", "/run/virtlogd.pid", "/run/virtlockd.pid"):
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    time.sleep(0.5)
    storage.unmount_path(paths.shared_dir)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vmha.lab.nodeinit")
    parser.add_argument("--root", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--no-cluster", action="store_true")
    args = parser.parse_args(argv)

    def on_signal(_sig: int, _frame: object) -> None:
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner = CommandRunner()
    paths = LabPaths(args.root)
    daemons: tuple[subprocess.Popen[bytes], ...] = ()
    try:
        setup_mounts(runner, paths, args.name)
        start_libvirt(runner)
        if not args.no_cluster:
            daemons = start_cluster(runner)
        print(f"{args.name}: up", flush=True)
        while True:
            reap()
            time.sleep(1.0)
    except Stop:
        print(f"{args.name}: shutting down", flush=True)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shutdown(runner, daemons, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
