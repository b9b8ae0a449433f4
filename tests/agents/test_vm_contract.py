"""Contract tests: the VirtualMachine executable run as pacemaker-execd runs it, a fresh process
per action, against a private libvirtd whose test driver keeps state between processes, and an
offline CIB so the utilization written with crm_resource can be read back."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.support.agent import ocf_env, run_agent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a private libvirtd needs root (CI runs as root)")

DOMAIN_XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type>hvm</type></os>
</domain>
"""


@pytest.fixture
def vm(daemon, tmp_path):
    """A fresh domain config, an offline CIB holding its resource, and the OCF environment."""
    uri, holder = daemon
    name = "vm-" + uuid.uuid4().hex[:8]
    dom_uuid = str(uuid.uuid4())
    config = tmp_path / f"{name}.xml"
    config.write_text(DOMAIN_XML.format(name=name, uuid=dom_uuid, mem=256, vcpus=2))
    cib = tmp_path / "cib.xml"
    with open(cib, "w") as fh:
        subprocess.run(["cibadmin", "--empty"], stdout=fh, check=True)
    subprocess.run(
        [
            "cibadmin",
            "--create",
            "-o",
            "resources",
            "--xml-text",
            f"<primitive id='{name}' class='ocf' provider='vmha' type='VirtualMachine'/>",
        ],
        env={"CIB_file": str(cib), "PATH": "/usr/sbin:/usr/bin"},
        check=True,
    )
    rsctmp = tmp_path / "rsctmp"

    def env(**kw):
        params = {"config": str(config), "hypervisor": uri}
        params.update({k: v for k, v in kw.items() if not k.startswith("_")})
        return ocf_env(
            name,
            params,
            rsctmp=str(rsctmp),
            interval_ms=kw.get("_interval", 10000),
            timeout_ms=kw.get("_timeout", 20000),
            extra={"CIB_file": str(cib)},
        )

    def utilization(key):
        done = subprocess.run(
            ["crm_resource", "-r", name, "-z", "-g", key],
            capture_output=True,
            text=True,
            env={"CIB_file": str(cib), "PATH": "/usr/sbin:/usr/bin"},
        )
        # crm_resource answers rc 0 with no output when the attribute does not exist.
        return (done.stdout.strip() or None) if done.returncode == 0 else None

    def set_utilization(key, value):
        subprocess.run(
            ["crm_resource", "-r", name, "-z", "-p", key, "-v", value],
            check=True,
            capture_output=True,
            env={"CIB_file": str(cib), "PATH": "/usr/sbin:/usr/bin"},
        )

    class VM:
        pass

    v = VM()
    v.name, v.uuid, v.config, v.env, v.holder, v.uri = name, dom_uuid, config, env, holder, uri
    v.utilization, v.set_utilization = utilization, set_utilization
    yield v
    import libvirt

    try:
        holder.lookupByName(name).destroy()
    except libvirt.libvirtError:
        pass


def state_of(vm):
    import libvirt

    try:
        return vm.holder.lookupByName(vm.name).state()[0]
    except libvirt.libvirtError:
        return None


def test_lifecycle_start_monitor_stop(vm):
    assert run_agent("validate-all", vm.env()).rc == 0
    probe = run_agent("monitor", vm.env(_interval=0))
    assert probe.rc == 7 and probe.reasons == []

    started = run_agent("start", vm.env())
    assert started.rc == 0, started.stderr
    assert state_of(vm) == 1  # VIR_DOMAIN_RUNNING in the daemon, seen by another client
    assert run_agent("monitor", vm.env()).rc == 0
    assert run_agent("monitor", vm.env(_interval=0)).rc == 0
    assert run_agent("start", vm.env()).rc == 0  # idempotent: no second domain, no error

    stopped = run_agent("stop", vm.env())
    assert stopped.rc == 0, stopped.stderr
    assert state_of(vm) is None  # transient: gone once stopped
    after = run_agent("monitor", vm.env())
    assert after.rc == 7 and vm.name in after.reason
    assert run_agent("stop", vm.env()).rc == 0  # stop of an absent domain succeeds


def test_utilization_written_once_then_only_on_change(vm):
    assert run_agent("start", vm.env()).rc == 0
    assert (vm.utilization("cpu"), vm.utilization("hv_memory"), vm.utilization("host_memory")) == ("2", "256", "256")
    # Someone changes the CIB behind our back: an unchanged VM must not rewrite it on monitor
    # (VirtualDomain calls crm_resource on every monitor).
    vm.set_utilization("cpu", "99")
    assert run_agent("monitor", vm.env()).rc == 0
    assert vm.utilization("cpu") == "99"
    # A changed VM is published at the next monitor.
    vm.holder.lookupByName(vm.name).setVcpusFlags(1, 1)  # VIR_DOMAIN_AFFECT_LIVE
    assert run_agent("monitor", vm.env()).rc == 0
    assert vm.utilization("cpu") == "1"
    off = vm.env(autoset_utilization_hv_memory="false", unset_utilization_hv_memory="true")
    assert run_agent("reload-agent", off).rc == 0
    assert run_agent("monitor", off).rc == 0
    assert vm.utilization("hv_memory") is None
    assert vm.utilization("host_memory") == "256"


def test_shutdown_mode_reaches_libvirt(vm):
    assert run_agent("start", vm.env()).rc == 0
    # The test driver refuses shutdown flags, which proves the mode was passed on (VirtualDomain
    # reads the parameter under a wrong name and never passes it); the stop still succeeds.
    stopped = run_agent("stop", vm.env(shutdown_mode="acpi", HA_DEBUG="1"))
    assert stopped.rc == 0
    assert "unsupported flags (0x1)" in stopped.stderr
    assert state_of(vm) is None


def test_states_paused_and_destroyed(vm):
    assert run_agent("start", vm.env()).rc == 0
    dom = vm.holder.lookupByName(vm.name)
    dom.suspend()  # paused by the user: an operation, not a failure
    assert run_agent("monitor", vm.env()).rc == 0
    dom.resume()
    dom.destroy()  # killed behind the cluster's back
    gone = run_agent("monitor", vm.env())
    assert gone.rc == 7


def test_domain_name_conflict_refused(vm):
    # libvirt already has a domain with this name but another UUID.
    other = DOMAIN_XML.format(name=vm.name, uuid=str(uuid.uuid4()), mem=128, vcpus=1)
    vm.holder.createXML(other, 0)
    started = run_agent("start", vm.env())
    assert started.rc == 2
    assert vm.name in started.reason and "UUID" in started.reason


def test_probe_and_stop_without_config(vm, tmp_path):
    missing = str(tmp_path / "nowhere.xml")
    assert run_agent("monitor", vm.env(config=missing, _interval=0)).rc == 7
    assert run_agent("stop", vm.env(config=missing)).rc == 0
    validate = run_agent("validate-all", vm.env(config=missing))
    assert validate.rc == 5 and missing in validate.reason
    start = run_agent("start", vm.env(config=missing))
    assert start.rc == 5


def test_stop_uses_remembered_domain_when_config_vanishes(vm):
    assert run_agent("start", vm.env()).rc == 0
    os.rename(vm.config, str(vm.config) + ".moved")
    assert run_agent("monitor", vm.env()).rc == 0  # still watched through what start recorded
    assert run_agent("stop", vm.env()).rc == 0
    assert state_of(vm) is None


@pytest.mark.parametrize(
    ("content", "rc"),
    [
        (b"<domain type='test'><name>x</name>", 6),  # malformed
        (b"<network><name>x</name></network>", 6),  # not a domain
        (b"<domain type='test'><uuid>1</uuid></domain>", 6),  # no name
    ],
)
def test_bad_config_content(vm, content, rc):
    vm.config.write_bytes(content)
    for action in ("validate-all", "start"):
        run = run_agent(action, vm.env())
        assert run.rc == rc and len(run.reasons) == 1 and "Traceback" not in run.stderr


def test_config_is_a_directory(vm, tmp_path):
    run = run_agent("start", vm.env(config=str(tmp_path)))
    assert run.rc == 5 and "cannot be read" in run.reason


def test_external_entity_never_read(vm, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN")
    vm.config.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE domain [<!ENTITY s SYSTEM "file://{secret}">]>\n'
        "<domain type='test'><name>&s;</name><memory>1024</memory><os><type>hvm</type></os></domain>"
    )
    for action in ("validate-all", "start", "monitor"):
        run = run_agent(action, vm.env())
        assert run.rc == 6, (action, run.stderr)
        assert "TOP-SECRET" not in run.stdout + run.stderr
        assert "DOCTYPE" in run.reason


def test_wrong_types_and_unknown_action(vm):
    bad = run_agent("validate-all", vm.env(migration_speed="fast"))
    assert bad.rc == 6 and "migration_speed" in bad.reason
    assert run_agent("start", vm.env(force_stop="perhaps")).rc == 6
    assert run_agent("validate-all", vm.env(on_io_error="explode")).rc == 6
    unknown = run_agent("frobnicate", vm.env())
    assert unknown.rc == 3 and "frobnicate" in unknown.reason
    unsupported = run_agent("validate-all", vm.env(copyindirs="/etc"))
    assert unsupported.rc == 6 and "copyindirs" in unsupported.reason
    both = run_agent("validate-all", vm.env(force_stop="true", snapshot="/tmp"))
    assert both.rc == 6


def test_shell_metacharacters_are_inert(vm, tmp_path):
    marker = tmp_path / "pwned"
    evil = f"/tmp/x$(touch {marker});touch {marker}"
    assert run_agent("start", vm.env(config=evil)).rc == 5
    assert run_agent("validate-all", vm.env(migrate_options=f"--p2p; touch {marker}")).rc == 6
    assert run_agent("validate-all", vm.env(monitor_scripts=f"`touch {marker}`")).rc == 6
    assert run_agent("validate-all", vm.env(hypervisor=f"qemu:///system;touch {marker}")).rc != 0
    assert not marker.exists()


def test_monitor_scripts_gate_monitor(vm, tmp_path):
    ok = tmp_path / "ok.sh"
    ok.write_text('#!/bin/sh\n[ -n "$VMHA_DOMAIN_UUID" ] || exit 3\nexit 0\n')
    ok.chmod(0o755)
    fail = tmp_path / "fail.sh"
    fail.write_text("#!/bin/sh\necho database not answering >&2\nexit 4\n")
    fail.chmod(0o755)
    assert run_agent("start", vm.env(monitor_scripts=str(ok))).rc == 0
    assert run_agent("monitor", vm.env(monitor_scripts=str(ok))).rc == 0
    failed = run_agent("monitor", vm.env(monitor_scripts=f"{ok} {fail}"))
    assert failed.rc == 1 and "database not answering" in failed.reason
