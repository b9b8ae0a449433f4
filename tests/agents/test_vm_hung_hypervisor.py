"""A libvirtd that accepts the connection and never answers: every action must still answer
inside its operation timeout, with a clear code and one exit reason (issue: the deadline must
hold even when libvirt blocks in C)."""

from __future__ import annotations

import pytest

from tests.support.agent import ocf_env, run_agent

TIMEOUT_MS = 5000

DOMAIN_XML = "<domain type='kvm'><name>hung1</name><memory>1024</memory><os><type>hvm</type></os></domain>"


@pytest.fixture
def env(silent_socket, tmp_path):
    config = tmp_path / "hung1.xml"
    config.write_text(DOMAIN_XML)

    def make(interval_ms=10000, **params):
        base = {
            "config": str(config),
            "hypervisor": f"qemu+unix:///system?socket={silent_socket}",
            "autoset_utilization_cpu": "false",
            "autoset_utilization_hv_memory": "false",
            "autoset_utilization_host_memory": "false",
        }
        base.update(params)
        return ocf_env("hung1", base, rsctmp=str(tmp_path / "rsctmp"), interval_ms=interval_ms, timeout_ms=TIMEOUT_MS)

    return make


def _within_timeout(run):
    assert run.seconds < TIMEOUT_MS / 1000, f"took {run.seconds:.1f}s, past the {TIMEOUT_MS} ms timeout"
    assert "Traceback" not in run.stderr
    assert len(run.reasons) <= 1


def test_probe_answers_not_running_from_proc(env):
    # No QEMU process of hung1 on this host: the truthful probe answer is "not running",
    # found in /proc because libvirtd cannot be asked.
    run = run_agent("monitor", env(interval_ms=0))
    _within_timeout(run)
    assert run.rc == 7


def test_recurring_monitor_reports_libvirt_not_answering(env):
    run = run_agent("monitor", env())
    _within_timeout(run)
    assert run.rc == 7
    assert "not answering" in run.reason


def test_start_fails_inside_its_timeout(env):
    run = run_agent("start", env())
    _within_timeout(run)
    assert run.rc == 1
    assert "did not answer" in run.reason or "did not finish" in run.reason


def test_stop_succeeds_when_no_qemu_runs(env):
    # libvirtd hung and no QEMU process of this domain here: nothing to stop, so no fencing.
    run = run_agent("stop", env())
    _within_timeout(run)
    assert run.rc == 0


def test_remote_hypervisor_hung_is_a_clear_error(env, silent_socket):
    # A URI whose processes we cannot see: the answer is a clear error, not a guess.
    run = run_agent("monitor", env(hypervisor=f"test+unix:///default?socket={silent_socket}"))
    _within_timeout(run)
    assert run.rc == 1 and "cannot ask hypervisor" in run.reason


def test_unreachable_socket_probe(env, tmp_path):
    run = run_agent("monitor", env(interval_ms=0, hypervisor=f"qemu+unix:///system?socket={tmp_path}/none"))
    _within_timeout(run)
    assert run.rc == 7


def test_remote_hypervisor_hung_probe_without_history_is_not_running(env, silent_socket):
    # Nothing was started here since boot and the hypervisor cannot be asked: a failed probe
    # would lead to a failed stop and a fenced host, so the answer is "not running".
    run = run_agent("monitor", env(interval_ms=0, hypervisor=f"test+unix:///default?socket={silent_socket}"))
    _within_timeout(run)
    assert run.rc == 7
    stop = run_agent("stop", env(hypervisor=f"test+unix:///default?socket={silent_socket}"))
    _within_timeout(stop)
    assert stop.rc == 0


@pytest.fixture
def on_hung_path(env, tmp_path):
    """A config whose disk is on a FUSE path (tests.support.fuse): the domain's storage."""
    from tests.support import fuse

    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "hung1.img").write_bytes(b"\0" * 512)
    with fuse.served(str(tmp_path / "store"), str(tmp_path / "shared")) as path:
        disk = (
            f"<devices><disk type='file' device='disk'><source file='{path.mountpoint}/hung1.img'/>"
            "<target dev='vda'/></disk></devices>"
        )
        (tmp_path / "hung1.xml").write_text(DOMAIN_XML.replace("</domain>", disk + "</domain>"))
        yield path


def test_stop_fails_for_fencing_when_the_disks_storage_hangs(env, on_hung_path):
    # a QEMU of the domain runs here and its disk's path does not answer: writes the guest
    # sent may still wait there and land under the VM on another host later, so the stop
    # kills QEMU (not through libvirtd) and fails, and Pacemaker then fences this host
    import subprocess
    import sys

    qemu = subprocess.Popen(  # a stand-in QEMU: argv[0] and -name are what /proc shows
        ["qemu-system-x86_64", "-c", "import time; time.sleep(60)", "-name", "guest=hung1"],
        executable=sys.executable,
    )
    on_hung_path.hang()
    try:
        run = run_agent("stop", env())
        died = qemu.wait(5)  # the agent's SIGKILL (raises if it is still alive)
    finally:
        on_hung_path.thaw()
        if qemu.poll() is None:
            qemu.kill()
    _within_timeout(run)
    assert run.rc == 1
    assert run.reason.startswith("fence this host: disk ") and " of hung1 does not answer" in run.reason
    assert "does not answer on this host" in run.stderr  # the log line names every such disk
    assert died == -9


def test_stop_with_hung_disk_storage_but_nothing_of_the_domain_here_succeeds(env, on_hung_path):
    # no QEMU of it and nothing started here: nothing of it can wait in this host's path
    on_hung_path.hang()
    try:
        run = run_agent("stop", env())
    finally:
        on_hung_path.thaw()
    _within_timeout(run)
    assert run.rc == 0, run.stderr


def test_stop_succeeds_when_the_disks_storage_answers_or_fails(env, on_hung_path):
    assert run_agent("stop", env()).rc == 0
    on_hung_path.cut()  # errors come back: nothing can be queued on a path that fails
    run = run_agent("stop", env())
    _within_timeout(run)
    assert run.rc == 0, run.stderr
