"""A start that gives up at its deadline never leaves a domain running behind the cluster's
back, against a real libvirtd and QEMU (fault injection: an emulator that is slow).

Two places libvirt can be slow in (measured on libvirt 9): probing the emulator's
capabilities, which happens while the domain XML is parsed, before the domain is even listed
(what made ``createXML`` complete unseen after ``stop`` had answered "not running"); and
launching QEMU, while the domain is listed as paused/starting-up.  In both, ``start`` fails at
its deadline, the ``stop`` Pacemaker runs next answers 0, and until 8 s past the moment the
start would have completed inside libvirtd the domain is never seen running (see
vmha.virtual_machine.starting and stopping.settle_abandoned_start).
The same for a persistent resource; a probe instead of the stop (a cleanup) reports what the
start left, true at the moment it answers; and with libvirtd SIGSTOPped in the middle of the
start, the stop fails (fencing is the recovery) rather than answer "stopped" while the start
waits inside libvirtd to complete.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.support.agent import AGENT_DIR
from tests.support.qemulibvirtd import qemu_libvirtd

AGENT = os.path.join(AGENT_DIR, "VirtualMachine")
SLOW_S = 12
WATCH_S = 20.0
# a start that gave up completes inside libvirtd SLOW_S after it began, if it ever does: the
# watch runs until well past that moment (and a few seconds after the stop in any case)
LATE_MARGIN_S = 8.0
QEMU = "/usr/bin/qemu-system-x86_64"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a private libvirtd running QEMU needs root (make test runs as root)"),
]

# The probe of capabilities runs the emulator with "-machine none"; a guest launch does not.
WRAPPER = """#!/bin/sh
case " $* " in
*" -machine none"*) [ "{where}" = probe ] && sleep {slow} ;;
*) [ "{where}" = launch ] && sleep {slow} ;;
esac
exec {qemu} "$@"
"""

DOMAIN_XML = """<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>
  <memory unit='MiB'>32</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>{emulator}</emulator><memballoon model='none'/></devices>
</domain>
"""


@pytest.fixture
def workdir():
    directory = tempfile.mkdtemp(prefix="vmha-late-", dir="/tmp")  # noqa: S108 - short socket path
    os.chmod(directory, 0o755)  # noqa: S103 - libvirt runs the emulator wrapper from here
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _agent(action: str, env: dict[str, str], timeout_ms: int) -> subprocess.CompletedProcess[str]:
    run_env = dict(env, OCF_RESKEY_CRM_meta_timeout=str(timeout_ms))
    return subprocess.run([AGENT, action], capture_output=True, text=True, env=run_env, timeout=timeout_ms / 1000 + 10)


@dataclass
class Setup:
    env: dict[str, str]
    uri: str
    name: str
    pidfile: str


@contextmanager
def slow_domain(workdir: str, where: str, **params: str) -> Iterator[Setup]:
    """A private libvirtd + QEMU, an emulator slow at ``where``, and a resource's environment;
    whatever happens, no QEMU outlives it."""
    import libvirt

    if not os.access(QEMU, os.X_OK):
        pytest.fail(f"{QEMU} is not installed: without it no domain is ever defined and these tests prove nothing")
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    emulator = os.path.join(workdir, "slow-qemu")
    with open(emulator, "w") as fh:
        fh.write(WRAPPER.format(where=where, slow=SLOW_S, qemu=QEMU))
    os.chmod(emulator, 0o755)  # noqa: S103
    name = f"vmha-late-{where}"
    config = os.path.join(workdir, f"{name}.xml")
    with open(config, "w") as fh:
        fh.write(DOMAIN_XML.format(name=name, uuid=uuid.uuid4(), emulator=emulator))
    daemon_dir = os.path.join(workdir, "d")
    with qemu_libvirtd(daemon_dir) as sock:
        uri = f"qemu+unix:///system?socket={sock}"
        rsctmp = os.path.join(workdir, "rsctmp")
        os.makedirs(rsctmp)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "OCF_ROOT": "/usr/lib/ocf",
            "HA_RSCTMP": rsctmp,
            "OCF_RESOURCE_INSTANCE": "vm-late",
            "OCF_RESKEY_config": config,
            "OCF_RESKEY_hypervisor": uri,
            "OCF_RESKEY_force_stop": "true",
            **{f"OCF_RESKEY_{k}": v for k, v in params.items()},
        }
        setup = Setup(env, uri, name, os.path.join(daemon_dir, "libvirtd.pid"))
        try:
            yield setup
        finally:
            _resume(setup)
            conn = libvirt.open(uri)
            try:
                dom = conn.lookupByName(name)
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()  # a define that completed late: inactive, nothing starts it
            except libvirt.libvirtError:
                pass
            conn.close()


def _daemon_pid(setup: Setup) -> int:
    with open(setup.pidfile) as fh:
        return int(fh.read().strip())


def _resume(setup: Setup) -> None:
    try:
        os.kill(_daemon_pid(setup), signal.SIGCONT)
    except (OSError, ValueError):
        pass


def _states(setup: Setup, seconds: float) -> list[tuple[int, int] | None]:
    """What libvirt says of the domain every 0.25 s for ``seconds``."""
    import libvirt

    conn = libvirt.open(setup.uri)
    seen: list[tuple[int, int] | None] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                state = conn.lookupByName(setup.name).state()
                seen.append((state[0], state[1]))
            except libvirt.libvirtError:
                seen.append(None)
            time.sleep(0.25)
    finally:
        conn.close()
    return seen


def _past_late_completion(began: float) -> float:
    """Seconds to watch, from now, so the watch ends LATE_MARGIN_S after the moment a start
    begun at ``began`` (monotonic) would complete late."""
    return max(5.0, began + SLOW_S + LATE_MARGIN_S - time.monotonic())


def _running(seen: list[tuple[int, int] | None]) -> list[tuple[int, int]]:
    import libvirt

    return [s for s in seen if s is not None and s[0] == libvirt.VIR_DOMAIN_RUNNING]


@pytest.mark.parametrize("where", ["probe", "launch"])
def test_a_start_that_gave_up_never_leaves_the_domain_running(workdir: str, where: str) -> None:
    with slow_domain(workdir, where) as setup:
        began = time.monotonic()
        start = _agent("start", setup.env, 5000)
        assert start.returncode == 1, (start.returncode, start.stderr)
        stop = _agent("stop", setup.env, 40000)
        assert stop.returncode == 0, (stop.returncode, stop.stderr)
        probe = _agent("monitor", setup.env, 10000)
        assert probe.returncode == 7, (probe.returncode, probe.stderr)
        seen = _states(setup, _past_late_completion(began))
        assert not _running(seen), f"the domain came up after the stop answered: {seen}"
    print(f"{where}: start {start.stderr.strip().splitlines()[-1:]}, states seen {sorted(set(seen), key=str)}")


def test_a_persistent_resource_whose_start_gave_up_stays_defined_and_off(workdir: str) -> None:
    import libvirt

    with slow_domain(workdir, "launch", persistent="true") as setup:
        began = time.monotonic()
        start = _agent("start", setup.env, 5000)
        assert start.returncode == 1, (start.returncode, start.stderr)
        stop = _agent("stop", setup.env, 40000)
        assert stop.returncode == 0, (stop.returncode, stop.stderr)
        seen = _states(setup, _past_late_completion(began))
        assert not _running(seen), f"the domain came up after the stop answered: {seen}"
        assert set(seen) == {(libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)}, seen


def test_a_probe_after_a_start_that_gave_up_answers_what_is_true(workdir: str) -> None:
    """A cleanup re-probes before any stop: the probe waits out the start still inside
    libvirtd, then says what runs; whatever it answers stays true afterwards."""
    with slow_domain(workdir, "launch") as setup:
        start = _agent("start", setup.env, 5000)
        assert start.returncode == 1, (start.returncode, start.stderr)
        probe = _agent("monitor", setup.env, 20000)
        assert probe.returncode in (0, 7), (probe.returncode, probe.stderr)
        seen = _states(setup, 5.0)
        if probe.returncode == 0:
            assert len(_running(seen)) == len(seen), f"probe said running, libvirt: {seen}"
        else:
            assert not _running(seen), f"probe said not running, libvirt: {seen}"
        stop = _agent("stop", setup.env, 40000)
        assert stop.returncode == 0, (stop.returncode, stop.stderr)
        seen = _states(setup, 5.0)
        assert not _running(seen), f"the domain runs after the stop answered: {seen}"
    print(f"probe answered {probe.returncode}")


def test_a_stop_while_libvirtd_is_stopped_mid_start_fails_rather_than_lie(workdir: str) -> None:
    """libvirtd SIGSTOPped while the start is inside it: the start gives up, and the stop cannot
    know what libvirtd will do once it runs again, so it fails (fencing would follow)."""
    with slow_domain(workdir, "launch") as setup:
        starting = subprocess.Popen(
            [AGENT, "start"],
            env=dict(setup.env, OCF_RESKEY_CRM_meta_timeout="8000"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(2.0)  # the define has answered and the start job is in libvirtd (12 s launch)
            os.kill(_daemon_pid(setup), signal.SIGSTOP)
            _out, err = starting.communicate(timeout=30)
        finally:
            if starting.poll() is None:
                starting.kill()
                starting.wait()
        assert starting.returncode == 1, (starting.returncode, err)
        stop = _agent("stop", setup.env, 10000)
        assert stop.returncode == 1, (stop.returncode, stop.stderr)
        assert "a start that gave up may still be inside it" in stop.stderr, stop.stderr
        _resume(setup)
        again = _agent("stop", setup.env, 40000)  # libvirtd answers again: now it can be settled
        assert again.returncode == 0, (again.returncode, again.stderr)
        seen = _states(setup, WATCH_S)
        assert not _running(seen), f"the domain came up after the stop answered: {seen}"
