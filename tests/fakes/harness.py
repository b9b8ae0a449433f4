"""Run VirtualMachine actions the way Pacemaker does, against the fake libvirt and runner.

``Cluster`` is two hosts: node1, where the actions run (``qemu:///system``), and node2, the
peer and migration target (``qemu://node2/system``, also ``qemu+tcp://node2/system``).
``Cluster.run(action, **params)`` builds the OCF environment (``OCF_RESKEY_<param>``;
``meta_<name>`` becomes ``OCF_RESKEY_CRM_meta_<name>``), calls
``vmha.ocf.dispatch.run(vmha.virtual_machine.agent.SPEC, ...)`` and returns the exit code,
the exit reason, everything logged and how long it took.

Fixtures (import them into a test module): ``lv`` the fake libvirt module, ``vm`` the
Cluster, ``qemu_scan`` a ``find_qemu`` that never reads this host's /proc, ``qemu_process`` a
real process standing in for vm1's QEMU.  At teardown ``vm`` fails the test if the
dispatcher's watchdog fired (its ``os._exit`` is recorded, not done), if the scripted runner
was not used up, or if a libvirt connection was left open.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from vmha import qemu_processes as procscan
from vmha.ocf import dispatch, statefile
from vmha.ocf.codes import OcfRc
from vmha.virtual_machine import agent as virtual_machine
from vmha.virtual_machine import resource as vm_resource

from tests.fakes import libvirt as fl
from tests.fakes.runner import FakeRunner

UUID = "6f1b8d2e-3c4a-4b5d-9e6f-7a8b9c0d1e2f"
OTHER_UUID = "0a0b0c0d-1111-2222-3333-444455556666"
LOCAL_URI = "qemu:///system"
PEER_URI = "qemu://node2/system"  # what migrate_to builds from qemu:///system and node2
PEER_TCP_URI = "qemu+tcp://node2/system"
NODES = "1 node1 member\n2 node2 member\n"


def domain_xml(
    name: str = "vm1", uuid: str | None = UUID, vcpus: int = 2, memory_mib: int = 1024, agent: bool = False
) -> str:
    uuid_el = f"<uuid>{uuid}</uuid>" if uuid else ""
    devices = (
        "<devices><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>"
        if agent
        else "<devices/>"
    )
    return (
        f"<domain type='kvm'><name>{name}</name>{uuid_el}"
        f"<memory unit='MiB'>{memory_mib}</memory><vcpu>{vcpus}</vcpu>"
        f"<os><type arch='x86_64'>hvm</type></os>{devices}</domain>"
    )


@dataclass
class Outcome:
    """One action's result: ``reason`` is the exit reason as Pacemaker records it (cut to 128
    bytes by the dispatcher), ``log`` everything written to stderr, untruncated."""

    rc: int
    reason: str
    log: str
    seconds: float


class _NoExit:
    """Stands in for ``os`` in the dispatcher: the watchdog's ``_exit`` is recorded, not done."""

    def __init__(self, fired: list[int]) -> None:
        self._fired = fired

    def _exit(self, code: int) -> None:
        self._fired.append(code)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


class Cluster:
    """Two hosts (node1 runs the tests' actions, node2 is the peer / migration target)."""

    def __init__(self, tmp_path: Path, lv: fl.FakeLibvirt, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.lv = lv
        self.local = lv.hypervisor(LOCAL_URI, hostname="node1")
        self.peer = lv.hypervisor(PEER_URI, PEER_TCP_URI, hostname="node2")
        self.config = tmp_path / "vm1.xml"
        self.config.write_text(domain_xml())
        self.runner = FakeRunner.permissive()
        self.watchdog: list[int] = []
        self.connections_may_stay_open = False  # set by a test that expects a leak
        self.watchdog_may_fire = False
        monkeypatch.setattr(vm_resource, "CommandRunner", lambda env=None: self.runner)
        monkeypatch.setattr(dispatch, "os", _NoExit(self.watchdog))

    def rsctmp(self, node: str) -> Path:
        return self.tmp / f"rsctmp-{node}"

    def env(
        self, action: str, *, node: str, timeout_ms: int, interval_ms: int | None, params: dict[str, Any]
    ) -> dict[str, str]:
        env = {
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": "vm1",
            "OCF_RESOURCE_TYPE": "VirtualMachine",
            "HA_RSCTMP": str(self.rsctmp(node)),
            "HA_LOGFACILITY": "none",
            "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
            "OCF_RESKEY_config": str(self.config),
            "OCF_RESKEY_hypervisor": LOCAL_URI if node == "node1" else PEER_URI,
        }
        if action == "monitor":
            env["OCF_RESKEY_CRM_meta_interval"] = str(10000 if interval_ms is None else interval_ms)
        for key, value in params.items():
            if key.startswith("meta_"):
                env["OCF_RESKEY_CRM_" + key] = str(value)
            elif isinstance(value, bool):
                env["OCF_RESKEY_" + key] = "true" if value else "false"
            else:
                env["OCF_RESKEY_" + key] = str(value)
        return env

    def run(
        self,
        action: str,
        *,
        node: str = "node1",
        timeout_ms: int = 20000,
        interval_ms: int | None = None,
        **params: Any,
    ) -> Outcome:
        err = io.StringIO()
        env = self.env(action, node=node, timeout_ms=timeout_ms, interval_ms=interval_ms, params=params)
        t0 = time.monotonic()
        rc = dispatch.run(virtual_machine.SPEC, ["VirtualMachine", action], env, io.StringIO(), err)
        seconds = time.monotonic() - t0
        text = err.getvalue()
        reasons = [line.split(":", 1)[1] for line in text.splitlines() if line.startswith("ocf-exit-reason:")]
        assert len(reasons) <= 1, text
        if rc not in (OcfRc.SUCCESS, OcfRc.NOT_RUNNING):
            assert reasons and reasons[0].strip(), f"rc {rc} without an exit reason:\n{text}"
        return Outcome(rc, reasons[0] if reasons else "", text, seconds)

    def state(self, node: str = "node1") -> dict[str, Any]:
        return statefile.read(statefile.state_path(str(self.rsctmp(node)), "VirtualMachine", "vm1"))

    def strict(self) -> FakeRunner:
        self.runner = FakeRunner()
        return self.runner


@pytest.fixture
def lv(monkeypatch: pytest.MonkeyPatch) -> Iterator[fl.FakeLibvirt]:
    fake = fl.install(monkeypatch)
    yield fake
    fake.release()


@pytest.fixture
def qemu_scan(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``find_qemu`` that never reads this host's /proc: it finds ``table["pid"]`` (if set)
    and records what it was asked."""
    table: dict[str, Any] = {"pid": None, "asked": []}

    def find_qemu(name: str | None, uuid: str | None, proc: str = "/proc") -> procscan.QemuProcess | None:
        table["asked"].append((name, uuid))
        return procscan.QemuProcess(table["pid"], name, uuid) if table["pid"] else None

    monkeypatch.setattr(procscan, "find_qemu", find_qemu)
    return table


@pytest.fixture
def vm(
    tmp_path: Path, lv: fl.FakeLibvirt, monkeypatch: pytest.MonkeyPatch, qemu_scan: dict[str, Any]
) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, lv, monkeypatch)
    yield cluster
    assert cluster.watchdog_may_fire or not cluster.watchdog, "the watchdog fired: an action outlived its deadline"
    cluster.runner.assert_done()
    for hv in (cluster.local, cluster.peer):
        if not (hv.hang_open or hv.hang_calls or cluster.connections_may_stay_open):
            assert hv.open_connections == 0, f"{hv.uri}: connections left open"


def cib_read_argv() -> list[str]:
    """How the agent reads the resource's utilization from the CIB before its first write."""
    return ["cibadmin", "--query", "--scope", "resources", "--xpath", "//primitive[@id='vm1']/utilization"]


def utilization_argv(key: str, value: str) -> list[str]:
    return ["crm_resource", "--resource", "vm1", "--utilization", "--set-parameter", key, "--parameter-value", value]


def running_here(vm: Cluster, **kw: Any) -> fl.DomainRecord:
    """vm1 running on node1 from a persistent definition (stays defined when it stops)."""
    return vm.local.add_domain(domain_xml(), persistent=True, running=True, **kw)


def peer_check(vm: Cluster) -> dict[str, Any]:
    vm.runner.answer(["crm_node", "--name"], stdout="node1\n")
    vm.runner.answer(["crm_node", "--list"], stdout=NODES)
    return {"peer_check_uri": "qemu+tcp://%n/system"}


def migrating(vm: Cluster, **kw: Any) -> Outcome:
    return vm.run("migrate_to", meta_migrate_target="node2", meta_migrate_source="node1", **kw)


def _fake_qemu(monkeypatch: pytest.MonkeyPatch, code: str) -> Any:
    """A real process (``python -c code``) standing in for vm1's QEMU, and a ``find_qemu``
    that sees it while it lives; ``proc.asked`` records the lookups."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    asked: list[tuple[str | None, str | None]] = []

    def find_qemu(name: str | None, uuid: str | None, proc_dir: str = "/proc") -> procscan.QemuProcess | None:
        asked.append((name, uuid))
        return None if proc.poll() is not None else procscan.QemuProcess(proc.pid, name, uuid)

    monkeypatch.setattr(procscan, "find_qemu", find_qemu)
    proc.asked = asked  # type: ignore[attr-defined]
    return proc


@pytest.fixture
def qemu_process(monkeypatch: pytest.MonkeyPatch, qemu_scan: dict[str, Any]) -> Iterator[Any]:
    """A stand-in QEMU that exits on SIGTERM."""
    proc = _fake_qemu(monkeypatch, "import time; print('ready', flush=True); time.sleep(60)")
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture
def stubborn_qemu(monkeypatch: pytest.MonkeyPatch, qemu_scan: dict[str, Any]) -> Iterator[Any]:
    """A stand-in QEMU whose main loop is stuck: SIGTERM is never acted on, SIGKILL works."""
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    proc = _fake_qemu(monkeypatch, code)
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()
