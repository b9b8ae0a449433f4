"""vmha.virt and the VirtualMachine agent on the real libvirt binding, libvirt's test driver.

test:///default keeps its state per process, so these run in-process: several agent actions
in a row through the dispatcher see the same hypervisor."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid

import pytest
from vmha.deadline import Deadline
from vmha.ocf import dispatch
from vmha.virt.connection import Connection
from vmha.virt.domain import DomainState
from vmha.virt.errors import DomainConflict, DomainNotFound, HypervisorUnreachable, OperationInvalid
from vmha.virtual_machine.agent import SPEC

URI = "test:///default"
XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  {disk}
</domain>"""


def _xml(name, dom_uuid=None, disk=""):
    return XML.format(name=name, uuid=dom_uuid or str(uuid.uuid4()), disk=disk)


@pytest.fixture
def conn():
    c = Connection.open(URI, Deadline.after(10))
    yield c
    c.close()


def test_connection_lookup_state_and_lifecycle(conn):
    dom = conn.create_transient(_xml("it-life"))
    same = conn.lookup(uuid=dom.uuid())
    assert same.name == "it-life"
    assert conn.lookup(name="it-life").uuid() == dom.uuid()
    info = dom.info()
    assert info.status.state is DomainState.RUNNING and info.vcpus == 1 and info.max_memory_kib == 64 * 1024
    dom.destroy()
    assert dom.status().state is DomainState.SHUTOFF  # transient and gone: reads as shut off
    with pytest.raises(DomainNotFound):
        conn.lookup(name="it-life")
    assert conn.find(name="it-life") is None


def test_errors_are_classified(conn):
    dom = conn.create_transient(_xml("it-err"))
    with pytest.raises(DomainConflict):
        conn.create_transient(_xml("it-err"))
    persistent = conn.define(_xml("it-def"))
    with pytest.raises(OperationInvalid):
        persistent.destroy()  # defined but not running
    persistent.undefine()
    dom.destroy()
    with pytest.raises(HypervisorUnreachable):
        Connection.open("qemu+unix:///system?socket=/nonexistent/sock", Deadline.after(5))


def _run(action, env):
    err = io.StringIO()
    rc = dispatch.run(SPEC, ["VirtualMachine", action], env, stdout=io.StringIO(), stderr=err)
    return rc, err.getvalue()


@pytest.fixture
def agent_env(tmp_path):
    def make(name, **params):
        cfg = tmp_path / f"{name}.xml"
        if not cfg.exists():
            cfg.write_text(_xml(name, disk=params.pop("_disk", "")))
        env = {
            "OCF_RESOURCE_INSTANCE": name,
            "OCF_RESKEY_config": str(cfg),
            "OCF_RESKEY_hypervisor": URI,
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "OCF_RESKEY_CRM_meta_interval": "10000",
            "HA_RSCTMP": str(tmp_path / "rsctmp"),
            "OCF_RESKEY_autoset_utilization_cpu": "false",
            "OCF_RESKEY_autoset_utilization_hv_memory": "false",
            "OCF_RESKEY_autoset_utilization_host_memory": "false",
        }
        env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
        return env

    return make


def test_snapshot_stop_saves_and_start_restores(agent_env, tmp_path, conn):
    snap = tmp_path / "snap"
    snap.mkdir()
    env = agent_env("it-snap", snapshot=str(snap))
    assert _run("start", env)[0] == 0
    assert _run("stop", env)[0] == 0
    assert (snap / "it-snap.state").exists()
    assert conn.find(name="it-snap") is None
    assert _run("start", env)[0] == 0
    assert not (snap / "it-snap.state").exists()  # consumed by the restore
    assert conn.lookup(name="it-snap").status().state is DomainState.RUNNING
    assert _run("stop", agent_env("it-snap"))[0] == 0


def test_persistent_mode_defines_without_autostart(agent_env, conn):
    env = agent_env("it-pers", persistent="true")
    assert _run("start", env)[0] == 0
    dom = conn.lookup(name="it-pers")
    assert dom.is_persistent() and not dom.raw.autostart()
    assert _run("stop", env)[0] == 0
    assert conn.lookup(name="it-pers").status().state is DomainState.SHUTOFF  # still defined
    conn.lookup(name="it-pers").undefine()


def test_transient_start_replaces_a_persistent_definition(agent_env, conn, tmp_path):
    env = agent_env("it-undef")
    with open(env["OCF_RESKEY_config"]) as fh:
        conn.define(fh.read())
    assert _run("start", env)[0] == 0
    dom = conn.lookup(name="it-undef")
    assert not dom.is_persistent()  # libvirt can no longer autostart it behind the cluster
    assert os.path.exists(env["OCF_RESKEY_config"])
    assert _run("stop", env)[0] == 0


def test_backingfile_overlay_made_with_qemu_img(agent_env, tmp_path, conn):
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    env = agent_env("it-cow", backingfile=str(base), stateless="true")
    overlay = tmp_path / "it-cow.qcow2"
    assert _run("validate-all", env)[0] == 0
    assert _run("start", env)[0] == 0
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(overlay)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert info["format"] == "qcow2" and info["backing-filename"] == str(base)
    assert _run("stop", env)[0] == 0


def test_save_config_on_stop_writes_libvirts_definition(agent_env, conn, tmp_path):
    env = agent_env("it-save", save_config_on_stop="true")
    cfg = env["OCF_RESKEY_config"]
    os.chmod(cfg, 0o640)
    assert _run("start", env)[0] == 0
    assert _run("stop", env)[0] == 0
    text = open(cfg).read()
    assert "<currentMemory" in text  # written by libvirt, not our original file
    assert oct(os.stat(cfg).st_mode & 0o777) == "0o640"


def test_start_waits_for_monitor_scripts(agent_env, tmp_path):
    flag = tmp_path / "ready"
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then exit 0; fi\ntouch {flag}\nexit 1\n")
    script.chmod(0o755)
    env = agent_env("it-scripts", monitor_scripts=str(script))
    rc, err = _run("start", env)
    assert rc == 0, err
    assert "waiting for monitor scripts" in err
    assert _run("stop", env)[0] == 0
