"""VirtualMachine's monitor at depth 10/20: a debounced guest-agent ping and the in-guest check.

The guest agent is the one part the fake libvirt does not model: a scripted stand-in for
``libvirt_qemu.qemuAgentCommand`` answers (or not) per call."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vmha.ocf import dispatch  # noqa: E402
from vmha.ocf.codes import OcfRc  # noqa: E402
from vmha.virt import guest_agent as agent_mod  # noqa: E402
from vmha.virtual_machine import agent as virtual_machine  # noqa: E402

from tests.fakes import harness  # noqa: E402
from tests.fakes import libvirt as fl  # noqa: E402
from tests.fakes.harness import Cluster, domain_xml, running_here  # noqa: E402

lv = harness.lv
vm = harness.vm
qemu_scan = harness.qemu_scan

NOT_CONNECTED = (fl.VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding: QEMU guest agent is not connected")
UNRESPONSIVE = (fl.VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding: Guest agent not available for now")


class Agent:
    """Scripted guest agent: ``mode`` is 'ok', 'not connected' or 'unresponsive'."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: list[str] = []
        self.exit_code = 0

    def __call__(self, dom: Any, request: str, timeout: int, flags: int) -> str:
        cmd = json.loads(request)
        self.calls.append(cmd["execute"])
        if self.mode != "ok":
            code, text = NOT_CONNECTED if self.mode == "not connected" else UNRESPONSIVE
            raise fl.libvirtError(text, code=code, domain=fl.VIR_FROM_QEMU)
        if cmd["execute"] == "guest-exec":
            self.argv = [cmd["arguments"]["path"], *cmd["arguments"].get("arg", [])]
            return json.dumps({"return": {"pid": 42}})
        if cmd["execute"] == "guest-exec-status":
            return json.dumps({"return": {"exited": True, "exitcode": self.exit_code, "out-data": "", "err-data": ""}})
        return json.dumps({"return": {}})


@pytest.fixture
def with_channel(vm: Cluster) -> Cluster:
    vm.config.write_text(domain_xml(agent=True))
    return vm


@pytest.fixture
def ga(monkeypatch: pytest.MonkeyPatch, with_channel: Cluster) -> Agent:
    fake = Agent()
    monkeypatch.setattr(agent_mod, "_real_command", lambda: fake)
    return fake


def monitor(vm: Cluster, level: int, **params: Any) -> tuple[int, str]:
    env = vm.env("monitor", node="node1", timeout_ms=20000, interval_ms=10000, params=params)
    env["OCF_CHECK_LEVEL"] = str(level)
    err = io.StringIO()
    rc = dispatch.run(virtual_machine.SPEC, ["VirtualMachine", "monitor"], env, io.StringIO(), err)
    return rc, err.getvalue()


def started_long_ago(vm: Cluster) -> None:
    """Start through the agent, then move the recorded start time past the boot grace."""
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS
    from vmha.ocf import statefile

    path = statefile.state_path(str(vm.rsctmp("node1")), "VirtualMachine", "vm1")
    state = statefile.read(path)
    state["started"]["at"] = time.monotonic() - 3600
    statefile.write(path, state)


def test_depth_0_never_asks_the_guest(vm: Cluster, ga: Agent) -> None:
    running_here(vm)
    assert monitor(vm, 0)[0] == OcfRc.SUCCESS
    assert ga.calls == []


def test_depth_10_pings_and_a_silent_guest_fails_only_after_n_misses(vm: Cluster, ga: Agent) -> None:
    vm.local.add_domain(domain_xml(), persistent=True, running=False)
    started_long_ago(vm)
    assert monitor(vm, 10)[0] == OcfRc.SUCCESS
    assert ga.calls == ["guest-ping"]
    ga.mode = "unresponsive"
    first = monitor(vm, 10, guest_misses=3)
    second = monitor(vm, 10, guest_misses=3)
    assert (first[0], second[0]) == (OcfRc.SUCCESS, OcfRc.SUCCESS)  # one or two misses are not a failure
    assert "1 of 3" in first[1] and "2 of 3" in second[1]
    rc, log = monitor(vm, 10, guest_misses=3)
    assert rc == OcfRc.ERR_GENERIC and "not alive" in log
    ga.mode = "ok"
    rc, log = monitor(vm, 10, guest_misses=3)
    assert rc == OcfRc.SUCCESS and "answers again" in log


@pytest.mark.parametrize(("policy", "rc"), [("degraded", OcfRc.DEGRADED), ("ignore", OcfRc.SUCCESS)])
def test_failure_policy(vm: Cluster, ga: Agent, policy: str, rc: int) -> None:
    vm.local.add_domain(domain_xml(), persistent=True, running=False)
    started_long_ago(vm)
    ga.mode = "unresponsive"
    for _ in range(2):
        monitor(vm, 10, guest_misses=2, on_guest_failure=policy)
    assert monitor(vm, 10, guest_misses=2, on_guest_failure=policy)[0] == rc


def test_a_booting_guest_is_not_failed(vm: Cluster, ga: Agent) -> None:
    vm.local.add_domain(domain_xml(), persistent=True, running=False)
    assert vm.run("start", persistent=True).rc == OcfRc.SUCCESS  # just started: inside the grace
    ga.mode = "not connected"
    for _ in range(5):
        assert monitor(vm, 10, guest_misses=1, guest_boot_grace=300)[0] == OcfRc.SUCCESS


def test_a_paused_guest_is_not_asked(vm: Cluster, ga: Agent) -> None:
    rec = running_here(vm)
    rec.state, rec.reason = fl.VIR_DOMAIN_PAUSED, 1  # paused by the user
    assert monitor(vm, 10)[0] == OcfRc.SUCCESS
    assert ga.calls == []


def test_depth_20_runs_the_in_guest_check(vm: Cluster, ga: Agent) -> None:
    running_here(vm)
    assert monitor(vm, 20, guest_check_command="/usr/bin/pg_isready -q")[0] == OcfRc.SUCCESS
    assert ga.argv == ["/usr/bin/pg_isready", "-q"]
    ga.exit_code = 2
    rc, log = monitor(vm, 20, guest_check_command="/usr/bin/pg_isready -q")
    assert rc == OcfRc.ERR_GENERIC and "in-guest check" in log
    assert monitor(vm, 10, guest_check_command="/usr/bin/pg_isready -q")[0] == OcfRc.SUCCESS  # depth 10: ping only


def test_no_agent_channel_refused_at_validate_and_degraded_at_monitor(vm: Cluster, ga: Agent) -> None:
    vm.config.write_text(domain_xml(agent=False))
    env = vm.env("validate-all", node="node1", timeout_ms=20000, interval_ms=None, params={})
    env["OCF_CHECK_LEVEL"] = "10"
    err = io.StringIO()
    assert dispatch.run(virtual_machine.SPEC, ["VirtualMachine", "validate-all"], env, io.StringIO(), err) == 6
    assert "guest agent channel" in err.getvalue()
    assert vm.run("validate-all").rc == OcfRc.SUCCESS  # depth 0 needs no channel
    assert vm.run("validate-all", guest_check_command="/bin/true").rc == OcfRc.ERR_CONFIGURED
    running_here(vm)
    rc, log = monitor(vm, 10)
    assert rc == OcfRc.DEGRADED and "no guest agent channel" in log


def test_guest_check_command_refuses_shell_syntax(vm: Cluster) -> None:
    # the one guest-command rule (GuestService's too): a glob or a quoted metacharacter as well
    for bad in ("pg_isready", "/bin/sh -c 'x; y'", "/bin/true && reboot", "/bin/echo $(id)", "/bin/ls /srv/*"):
        assert vm.run("validate-all", guest_check_command=bad).rc == OcfRc.ERR_CONFIGURED, bad


@pytest.mark.parametrize("answers_again", [False, True])
def test_stop_after_a_failed_liveness_forces_the_guest_off(vm: Cluster, ga: Agent, answers_again: bool) -> None:
    # A hung guest ignores the shutdown request: the stop that follows the monitor's
    # "not alive" goes straight to destroy instead of waiting out shutdown_timeout.
    rec = vm.local.add_domain(domain_xml(), persistent=True, running=False)
    rec.ignore_shutdown = True
    started_long_ago(vm)
    ga.mode = "unresponsive"
    assert monitor(vm, 10, guest_misses=1)[0] == OcfRc.ERR_GENERIC
    if answers_again:  # the verdict is for the last monitor only
        ga.mode = "ok"
        assert monitor(vm, 10, guest_misses=1)[0] == OcfRc.SUCCESS
    out = vm.run("stop", persistent=True, shutdown_timeout=3)
    assert out.rc == OcfRc.SUCCESS and not rec.active
    asked = vm.local.called("shutdownFlags")
    if answers_again:
        assert asked and out.seconds >= 3  # a guest that answers is asked, and given its time
    else:
        assert not asked and out.seconds < 2
        assert "judged not alive" in out.log
