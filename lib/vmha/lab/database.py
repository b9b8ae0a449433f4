"""A real PostgreSQL in a lab guest, managed by a GuestService, and a client that counts what
it was told is committed.

A database VM gets, besides its first disk, the database disk (vmha.lab.dbdisk) copied onto
the shared storage as its ``vdb``, 256 MiB of memory and guest checks at depth 10.  Its
GuestService starts and stops PostgreSQL through the guest agent (``/sbin/vmha-pg``) and asks
it, over the guest network, for a login and a query on the primary (``db_check``).

``RowWriter`` is the client: from the host running the VM, one ``psql`` commits numbered
rows, one transaction each, and records every number the server acknowledged (psql prints a
``RETURNING`` row only once the statement's implicit transaction has committed, with
``synchronous_commit`` on).  ``rows_present`` reads them back from wherever the VM runs then;
``power_off`` pulls the plug of the VM's host under the writer and reports
``db_serving_again_s`` and ``committed_rows_lost``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vmha.lab import image, nodefiles, proc, scenarios
from vmha.lab.dbdisk import (
    DB_NAME,
    DB_USER,
    GUEST_SCRIPT_PATH,
    MEMORY_MIB,
    PG_LIB,
    PG_PORT,
    TABLE,
    copy_disk,
    ensure_template,
    password_file,
    read_password,
)
from vmha.lab.lab import Lab, LabError, wait_until
from vmha.ocf.runner import CommandTimedOut

PSQL = f"{PG_LIB}/bin/psql"


def url(vm: str) -> str:
    """What db_check asks: the role, the VM's guest address, the database."""
    return f"postgresql://{DB_USER}@{scenarios.guest_ip(vm)}:{PG_PORT}/{DB_NAME}"


def conninfo(vm: str, timeout_s: int = 3) -> str:
    host = scenarios.guest_ip(vm)
    return f"host={host} port={PG_PORT} dbname={DB_NAME} user={DB_USER} connect_timeout={timeout_s}"


def psql(lab: Lab, host: str, vm: str, sql: str, timeout: float = 10.0) -> str | None:
    """``sql``'s rows (psql -At) asked from ``host``; None when the database did not answer."""
    argv = [PSQL, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql, conninfo(vm, max(1, int(timeout / 2)))]
    try:
        done = lab.exec(host, argv, timeout=timeout, env={"PGPASSWORD": read_password(lab.paths.image_dir)})
    except (CommandTimedOut, LabError):
        return None
    return done.stdout if done.ok else None


def rows_present(lab: Lab, host: str, vm: str) -> set[int] | None:
    out = psql(lab, host, vm, f"SELECT n FROM {TABLE}")  # noqa: S608 - a constant
    if out is None:
        return None
    return {int(w) for w in out.split()}


@dataclass
class RowWriter:
    """Commits numbered rows through one psql on ``host`` until stopped or cut off."""

    lab: Lab
    host: str
    vm: str
    interval_s: float = 0.05
    start_at: int = 1
    acked: list[int] = field(default_factory=list)
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        pid = self.lab.host_pid(self.host)
        env = dict(os.environ, PGPASSWORD=read_password(self.lab.paths.image_dir))
        argv = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--"]
        argv += [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", conninfo(self.vm)]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._run, name=f"rows-{self.vm}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        p = self._proc
        if p is None or p.stdin is None or p.stdout is None:
            return
        n = self.start_at
        try:
            while not self._stop.is_set():
                p.stdin.write(f"INSERT INTO {TABLE} (n) VALUES ({n}) RETURNING n;\n")  # noqa: S608 - int
                p.stdin.flush()
                line = p.stdout.readline()
                if not line:
                    err = p.stderr.read() if p.stderr else ""
                    self.error = (err.strip().splitlines() or ["psql ended"])[-1]
                    return
                if line.strip() == str(n):
                    self.acked.append(n)
                n += 1
                time.sleep(self.interval_s)
        except (BrokenPipeError, OSError, ValueError) as exc:
            if not self._stop.is_set():  # not the end of input stop() gave it
                self.error = f"psql: {exc}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ends psql (its end of input; then, as a process group, SIGKILL: nsenter does not
        pass its own death on to psql) and the thread reading it."""
        self._stop.set()
        p = self._proc
        if p is not None and p.poll() is None:
            try:
                if p.stdin:
                    p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def last(self) -> int:
        return self.acked[-1] if self.acked else 0

    def to_json(self) -> dict[str, Any]:
        return {"acknowledged": len(self.acked), "last": self.last, "error": self.error}


# a VM's guest-layer checks (depth 10: the guest agent must answer), as the frozen-guest
# tests and the soak use them
GUEST_CHECKS = ("guest_misses=2", "guest_boot_grace=20", "guest_agent_timeout=2", "shutdown_timeout=20")


MIGRATION_THRESHOLD = 2
FAILURE_TIMEOUT = "10min"


def data_disk_name(vm: str) -> str:
    return f"{vm}-db"


def create_vm(lab: Lab, vm: str, *, prefer: str | None = None, agent: str | None = None) -> None:
    """VM ``vm`` with a database disk of its own on the shared storage, its guest watched at
    depth 10 (with ocf:vmha:VirtualMachine), created with pcs (Lab.create_vm)."""
    img = image.ensure(lab.paths.image_dir, lab.runner, lab.log)
    template = ensure_template(lab.paths.image_dir, lab.runner, lab.log)
    copy_disk(template, lab.paths.disk_image(data_disk_name(vm)), nodefiles.qemu_ids())
    ours = (agent or lab.state.agent) == "vmha"  # VirtualDomain has no guest checks
    lab.create_vm(
        vm,
        img,
        prefer=prefer,
        agent=agent,
        data_disk=lab.paths.disk_path(data_disk_name(vm)),
        memory_mib=MEMORY_MIB,
        params=list(GUEST_CHECKS) if ours else [],
        monitor=["interval=2s", "timeout=20s", "OCF_CHECK_LEVEL=10"] if ours else ["interval=10s", "timeout=30s"],
    )


def create_service(lab: Lab, name: str, vm: str, interval: str = "3s") -> None:
    """GuestService ``name``: PostgreSQL in ``vm``, started and stopped through the guest
    agent, its health asked over the guest network with db_check (a login and a query, on
    the primary), colocated with its VM and ordered after it."""
    script = GUEST_SCRIPT_PATH
    params = [
        "manager=commands",
        f"start_command={script} start",
        f"stop_command={script} stop",
        f"status_command={script} status",
        "service=postgresql",
        f"db_check={url(vm)}",
        f"db_password_file={password_file(lab.paths.image_dir)}",
        "db_require_primary=true",
        "db_timeout=3",
        "agent_timeout=5",
        # the ladder's second rung: a second failure on one host moves the service, and
        # (colocated, ordered) its VM, to another; the ban lifts after failure-timeout
        "meta",
        f"migration-threshold={MIGRATION_THRESHOLD}",
        f"failure-timeout={FAILURE_TIMEOUT}",
    ]
    ops = ["monitor", f"interval={interval}", "timeout=20s", "start", "timeout=90s", "stop", "timeout=60s"]
    scenarios.add_guest_service(lab, name, vm, params, ops)


def serving(lab: Lab, vm: str, service: str) -> str | None:
    """The host where ``vm`` and ``service`` are Started and the database answers a query."""
    s = lab.crm()
    host = s.started_on(vm) if s else None
    if not host or s is None or s.started_on(service) != host:
        return None
    if (r := s.resources.get(service)) is None or r.failed:
        return None
    return host if psql(lab, host, vm, "SELECT 1") is not None else None


def answers(lab: Lab, vm: str) -> Callable[[str], bool]:
    """``answers(host)``: the database in ``vm`` answers a query asked from ``host``."""
    return lambda host: psql(lab, host, vm, "SELECT 1") is not None


def break_server(lab: Lab, service: str, vm: str, how: str, timeout: float = 120.0) -> scenarios.ServiceRecovery:
    """``how``: "kill" (SIGKILL every postgres process in the guest) or "hang" (SIGSTOP them:
    the server still accepts connections, through the kernel, and never answers); measured
    until the service's monitor failed and the database answers again."""
    fault = ["/bin/killall", {"kill": "-KILL", "hang": "-STOP"}[how], "postgres"]
    return scenarios.break_guest_service(lab, service, vm, fault, answers(lab, vm), timeout=timeout)


def newest_row(lab: Lab, host: str, vm: str) -> int | None:
    out = psql(lab, host, vm, f"SELECT coalesce(max(n), 0) FROM {TABLE}")  # noqa: S608 - a constant
    return int(out.strip()) if out is not None and out.strip().isdigit() else None


@dataclass
class DbFailover:
    vm: str
    victim: str
    db_serving_again_s: float | None = None  # power off -> a query answered from the survivor
    served_from: str | None = None
    committed_rows_acknowledged: int = 0
    committed_rows_lost: int | None = None  # None: the rows could not be read back
    lost_numbers: list[int] | None = None  # None: not known (as committed_rows_lost)
    writer_error: str = ""
    failover: scenarios.Failover | None = None  # the host's failover, as scenarios measured it

    @property
    def ok(self) -> bool:
        return (
            self.db_serving_again_s is not None
            and self.committed_rows_lost == 0
            and self.committed_rows_acknowledged > 0
        )

    def to_json(self) -> dict[str, Any]:
        r: dict[str, Any] = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        r["lost_numbers"] = None if self.lost_numbers is None else self.lost_numbers[:20]
        r["failover"] = None if self.failover is None else self.failover.to_json()
        r["ok"] = self.ok
        return r


def power_off(lab: Lab, vm: str, service: str, *, min_rows: int = 20, timeout: float = 180.0) -> DbFailover:
    """Commit numbered rows into ``vm``'s database from its host, pull that host's plug, and
    measure until the database answers a query from a survivor; then read every acknowledged
    row back.  Raises LabError when the database does not serve before the fault."""
    host = serving(lab, vm, service)
    if host is None:
        raise LabError(f"the database in {vm} does not answer before the fault")
    start_at = (newest_row(lab, host, vm) or 0) + 1
    result = DbFailover(vm, host)
    writer = RowWriter(lab, host, vm, start_at=start_at)
    writer.start()
    if not wait_until(lambda: len(writer.acked) >= min_rows or writer.error, 30.0, 0.05) or writer.error:
        writer.stop()
        raise LabError(f"the row writer did not get going: {writer.error or 'no commits in 30 s'}")
    survivors = [h for h in lab.hosts if h != host]
    done = threading.Event()
    t0 = time.monotonic()

    def watch() -> None:
        while not done.is_set() and time.monotonic() - t0 < timeout:
            s = lab.crm(survivors[0])
            where = s.started_on(service) if s else None
            if where and where != host and psql(lab, where, vm, f"SELECT count(*) FROM {TABLE}", 5.0) is not None:  # noqa: S608
                result.db_serving_again_s = time.monotonic() - t0
                result.served_from = where
                return
            time.sleep(scenarios.POLL_S)

    watcher = threading.Thread(target=watch, name=f"serving-{vm}", daemon=True)
    watcher.start()
    try:
        result.failover = scenarios.power_off(lab, host, timeout=timeout)
        watcher.join(timeout)
    finally:
        done.set()
        writer.stop()
    result.committed_rows_acknowledged = len(writer.acked)
    result.writer_error = writer.error
    if result.served_from:
        present = rows_present(lab, result.served_from, vm)
        if present is not None:
            result.lost_numbers = [n for n in writer.acked if n not in present]
            result.committed_rows_lost = len(result.lost_numbers)
    return result


@dataclass
class GuestFreeze:
    vm: str
    host: str
    detected_s: float | None = None  # SIGSTOP of QEMU -> the VM's monitor failed
    exit_reason: str = ""
    vm_restarted_s: float | None = None  # -> Started with another QEMU
    db_serving_again_s: float | None = None  # -> the database answers again
    restarted_on: str | None = None
    qemu_pid_before: int | None = None
    qemu_pid_after: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def freeze_guest(lab: Lab, vm: str, service: str, timeout: float = 180.0) -> GuestFreeze:
    """SIGSTOP ``vm``'s QEMU (libvirt still says running; only the guest agent and the database
    fall silent); measured until the VM runs again in another QEMU and the database answers.
    The frozen QEMU is let go (SIGCONT) at the end, whatever happened."""
    host = serving(lab, vm, service)
    pid = scenarios.qemu_pid(lab, host, vm) if host else None
    if host is None or pid is None:
        raise LabError(f"the database in {vm} does not answer before the fault")
    result = GuestFreeze(vm, host, qemu_pid_before=pid)
    started = proc.start_time(pid)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        end = t0 + timeout
        while time.monotonic() < end:
            if result.detected_s is None and (failed := scenarios.failures_of(lab, vm)):
                result.detected_s, result.exit_reason = time.monotonic() - t0, failed[0].exit_reason
            s = lab.crm()
            where = s.started_on(vm) if s else None
            now_pid = scenarios.qemu_pid(lab, where, vm) if where else None
            if result.vm_restarted_s is None and now_pid and now_pid != pid:
                result.vm_restarted_s, result.restarted_on, result.qemu_pid_after = (
                    time.monotonic() - t0,
                    where,
                    now_pid,
                )
            if result.vm_restarted_s is not None and where and serving(lab, vm, service) == where:
                result.db_serving_again_s = time.monotonic() - t0
                break
            time.sleep(scenarios.POLL_S)
    finally:
        # the frozen QEMU itself, if it still exists: its PID may be another process's by now
        if started is not None and proc.start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    return result
