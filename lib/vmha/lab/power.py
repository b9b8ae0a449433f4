"""The lab's power switch: a daemon on a unix socket that turns hosts on and off.

"on" starts a host: its init (``vmha.lab.nodeinit``) runs as PID 1 of fresh mount, UTS,
IPC and PID namespaces inside the host's network namespace.  "off" is a pulled plug:
SIGKILL to that init, and the kernel kills every process of the host with it (QEMU too),
with no chance to shut down cleanly.  "stop" is the graceful variant (SIGTERM).

One request line, one reply line::

    on|off|stop|reboot|status|pid HOST   list   quit

The switch is the only parent of host inits, so it can wait for them; it records each init
as (pid, start time) under ``run/nodes/HOST/init.json`` so ``vmha lab down`` can still kill
exactly those processes if the switch itself has died.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from vmha.lab import proc
from vmha.lab.config import LabPaths, node_netns
from vmha.lab.fence_agent import ask
from vmha.ocf.runner import find_program

INIT_FIND_TIMEOUT_S = 5.0
OFF_WAIT_S = 15.0
STOP_WAIT_S = 120.0


@dataclass
class Host:
    name: str
    index: int
    launcher: subprocess.Popen[bytes] | None = None
    init: proc.ProcId | None = None

    def is_on(self) -> bool:
        return (
            self.launcher is not None
            and self.launcher.poll() is None
            and self.init is not None
            and proc.alive(self.init)
        )


class PowerSwitch:
    def __init__(self, paths: LabPaths, names: list[str]) -> None:
        self.paths = paths
        self.hosts = {n: Host(n, i) for i, n in enumerate(names, start=1)}
        self.lock = threading.Lock()

    def _launch(self, host: Host) -> str:
        node_dir = self.paths.node_dir(host.name)
        argv = [
            find_program("ip"),
            "netns",
            "exec",
            node_netns(host.name),
            find_program("unshare"),
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            sys.executable,
            "-m",
            "vmha.lab.nodeinit",
            "--root",
            self.paths.root,
            "--name",
            host.name,
            "--index",
            str(host.index),
        ]
        log = open(os.path.join(node_dir, "init.log"), "ab")  # noqa: SIM115 - child keeps it
        try:
            host.launcher = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=dict(os.environ),
                start_new_session=True,
            )
        finally:
            log.close()
        # unshare --fork: the host's init is the launcher's only child
        end = time.monotonic() + INIT_FIND_TIMEOUT_S
        pid = host.launcher.pid
        while time.monotonic() < end:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    children = f.read().split()
            except OSError:
                children = []
            if children:
                host.init = proc.identify(int(children[0]))
                if host.init:
                    break
            if host.launcher.poll() is not None:
                return "ERR host init exited at once (see init.log)"
            time.sleep(0.01)
        if host.init is None:
            return "ERR host init not found"
        with open(os.path.join(node_dir, "init.json"), "w") as f:
            json.dump({"init": host.init.to_json(), "launcher": pid}, f)
        return f"ON {host.init.pid}"

    def on(self, host: Host) -> str:
        if host.is_on():
            return "ON already"
        return self._launch(host)

    def off(self, host: Host, sig: int = signal.SIGKILL, wait: float = OFF_WAIT_S) -> str:
        if not host.is_on():
            return "OFF already"
        if host.init is None or host.launcher is None:  # is_on() said otherwise
            return "OFF already"
        proc.signal_if_ours(host.init, sig)
        try:
            host.launcher.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            # a PID namespace ends only when every member is reaped, including children
            # of processes outside it (nsenter): name what is holding it for the log
            ino = proc.netns_inode(node_netns(host.name))
            held = [(p, proc.comm(p)) for p in proc.pids_in_netns(ino)] if ino else []
            print(f"{host.name}: still going off after {wait:.0f}s: {held}", flush=True)
            return "ERR host did not go off in time"
        host.init = None
        return "OFF"

    def handle(self, line: str) -> str:
        parts = line.split()
        if not parts:
            return "ERR empty request"
        cmd, arg = parts[0], parts[1] if len(parts) > 1 else ""
        with self.lock:
            if cmd == "list":
                return " ".join(f"{n}={'on' if h.is_on() else 'off'}" for n, h in self.hosts.items())
            host = self.hosts.get(arg)
            if host is None:
                return f"ERR unknown host {arg!r}"
            if cmd == "on":
                return self.on(host)
            if cmd == "off":
                return self.off(host)
            if cmd == "stop":
                return self.off(host, signal.SIGTERM, STOP_WAIT_S)
            if cmd == "reboot":
                self.off(host)
                return self.on(host)
            if cmd == "status":
                return "ON" if host.is_on() else "OFF"
            if cmd == "pid":
                return str(host.init.pid if host.is_on() and host.init else 0)
        return f"ERR unknown command {cmd!r}"

    def all_off(self) -> None:
        with self.lock:
            for host in self.hosts.values():
                self.off(host)


def serve(paths: LabPaths, names: list[str]) -> None:
    switch = PowerSwitch(paths, names)
    done = threading.Event()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline().decode(errors="replace").strip()
            if line == "quit":
                switch.all_off()
                reply = "BYE"
                done.set()
            else:
                try:
                    reply = switch.handle(line)
                except Exception as exc:  # noqa: BLE001 - one bad request must not stop the switch
                    reply = f"ERR {exc}"
            self.wfile.write((reply + "\n").encode())

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    def on_term(_sig: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        os.unlink(paths.power_socket)
    except FileNotFoundError:
        pass
    old = os.umask(0o077)  # root only: the socket can power hosts off
    try:
        server = Server(paths.power_socket, Handler)
    finally:
        os.umask(old)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    while not done.wait(0.5):
        pass
    switch.all_off()
    server.shutdown()
    server.server_close()
    try:
        os.unlink(paths.power_socket)
    except FileNotFoundError:
        pass


class PowerClient:
    """Talks to the power switch daemon."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def request(self, line: str, timeout: float = 180.0) -> str:
        """Raises OSError when the switch is not there."""
        return ask(self.socket_path, line, timeout)

    def pid(self, host: str) -> int:
        try:
            return int(self.request(f"pid {host}", 5.0) or 0)
        except (OSError, ValueError):
            return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vmha.lab.power")
    parser.add_argument("--root", required=True)
    parser.add_argument("--hosts", required=True, help="comma-separated host names")
    args = parser.parse_args(argv)
    serve(LabPaths(args.root), args.hosts.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
