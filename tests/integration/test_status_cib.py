"""vmha status against Pacemaker's real tools reading a saved CIB (``CIB_file``: crm_mon,
cibadmin and crm_simulate answer from it as from a live cluster), libvirt's test driver as
every host's hypervisor, and real sockets as the services' client path.  The lab tests
(tests/lab/test_operator_tools.py) ask a live cluster."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from vmha.ops import status

from tests.integration.test_plan_simulate import ps

CRM_MON = "/usr/sbin/crm_mon"
pytestmark = pytest.mark.skipif(not os.access(CRM_MON, os.X_OK), reason="needs Pacemaker's tools (make deps)")


@pytest.fixture(autouse=True)
def on_ha1(monkeypatch: pytest.MonkeyPatch) -> None:
    """No controller answers crm_node --name beside a saved CIB: status runs "on" ha1."""
    monkeypatch.setattr(status, "this_host", lambda: "ha1")


@pytest.fixture()
def listening() -> Iterator[int]:
    """A TCP port that accepts (the client path of a healthy service)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cib(tmp_path: Path, *, ha2_online: bool = True, stonith: bool = True, checks: dict[str, str]) -> Path:
    hosts = [ps.HostSpec("ha1", 8, 8192), ps.HostSpec("ha2", 8, 8192, online=ha2_online)]
    vms = [
        ps.VmSpec("vm1", 1, 1024, "ha1", prefers=(("ha1", 50),)),
        ps.VmSpec("vm2", 1, 1024, "ha2" if ha2_online else None, prefers=(("ha2", 50),)),
    ]
    root = etree.fromstring(ps.build_cib(hosts, vms, stonith=stonith))
    for prim in root.iterfind("configuration/resources/primitive[@type='VirtualMachine']"):
        ia = prim.find("instance_attributes")
        for name, value in (("hypervisor", "test:///default"), ("remoteuri", "test:///default")):
            etree.SubElement(ia, "nvpair", id=f"{prim.get('id')}-{name}", name=name, value=value)
    # a GuestService in vm1, started on ha1 (its history copied from vm1's)
    svc = etree.SubElement(
        root.find("configuration/resources"), "primitive", id="web1", **{"class": "ocf"}, provider="vmha"
    )
    svc.set("type", "GuestService")
    ia = etree.SubElement(svc, "instance_attributes", id="web1-ia")
    for name, value in {"domain": "vm1", "manager": "systemd", "service": "nginx", **checks}.items():
        etree.SubElement(ia, "nvpair", id=f"web1-{name}", name=name, value=value)
    for lrm in root.iterfind("status/node_state/lrm/lrm_resources"):
        vm1 = lrm.find("lrm_resource[@id='vm1']")
        if vm1 is None:
            continue
        copy = etree.fromstring(
            etree.tostring(vm1).replace(b"vm1", b"web1").replace(b"VirtualMachine", b"GuestService")
        )
        lrm.append(copy)
    path = tmp_path / "cib.xml"
    path.write_bytes(etree.tostring(root))
    return path


def run_status(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    rc = status.main(["--json", *args], stdout=out, stderr=err, env={"CIB_file": str(path)})
    return rc, json.loads(out.getvalue())


def test_a_healthy_cluster_seen_whole(tmp_path: Path, listening: int) -> None:
    rc, snap = run_status(cib(tmp_path, checks={"tcp_check": f"127.0.0.1:{listening}"}))
    hosts = {h["name"]: h for h in snap["hosts"]}
    assert [h["state"] for h in hosts.values()] == ["online", "online"]
    assert hosts["ha1"]["capacity"]["hv_memory"] == 8192 and hosts["ha1"]["used"]["hv_memory"] == 1024
    # libvirt's test driver answers for every host; its own domain "test" is no cluster VM's
    assert hosts["ha1"]["libvirt"] == "answers" and "test" in hosts["ha1"]["domains"]
    assert any("runs test outside the cluster" in w for w in snap["warnings"]), snap["warnings"]
    vms = {v["id"]: v for v in snap["vms"]}
    assert vms["vm1"]["hosts"] == ["ha1"] and vms["vm1"]["role"] == "Started" and vms["vm1"]["since"] > 0
    web = vms["vm1"]["services"][0]
    assert web["id"] == "web1" and web["hosts"] == ["ha1"]
    assert web["checks"] == [
        {"check": f"tcp://127.0.0.1:{listening}", "ok": True, "reason": web["checks"][0]["reason"]}
    ]
    assert snap["cluster"]["n_plus_1"] == "met" and snap["problems"] == []
    # the domain outside the cluster is a warning: degraded, not down
    assert (rc, snap["verdict"]) == (1, "degraded")


def test_a_failing_client_path_is_down_with_the_agents_reason(tmp_path: Path) -> None:
    port = closed_port()
    rc, snap = run_status(cib(tmp_path, checks={"tcp_check": f"127.0.0.1:{port}"}))
    assert rc == 2 and snap["verdict"] == "down"
    assert any(p.startswith("service web1: ") and str(port) in p for p in snap["problems"]), snap["problems"]
    rc, snap = run_status(cib(tmp_path, checks={"tcp_check": f"127.0.0.1:{port}"}), "--no-checks")
    assert rc == 1 and snap["vms"][0]["services"][0]["checks"] == []


def test_a_host_offline_and_fencing_disabled(tmp_path: Path) -> None:
    rc, snap = run_status(cib(tmp_path, ha2_online=False, stonith=False, checks={}))
    assert rc == 2
    assert "host ha2 is offline" in snap["problems"] and "VM vm2 is not running" in snap["problems"]
    assert any(w.startswith("fencing is disabled (stonith-enabled=false)") for w in snap["warnings"])
    hosts = {h["name"]: h for h in snap["hosts"]}
    assert hosts["ha2"]["state"] == "offline" and hosts["ha2"]["libvirt"] == "not asked (offline)"


def test_the_text_view_groups_by_host_without_colour_off_a_terminal(tmp_path: Path, listening: int) -> None:
    out = io.StringIO()
    rc = status.main(
        [], stdout=out, env={"CIB_file": str(cib(tmp_path, checks={"tcp_check": f"127.0.0.1:{listening}"}))}
    )
    text = out.getvalue()
    assert rc == 1 and "\x1b[" not in text
    lines = text.splitlines()
    ha1 = next(i for i, line in enumerate(lines) if line.startswith("ha1  online"))
    assert lines[ha1 + 1].startswith("  vm1 ") and lines[ha1 + 2].startswith("    web1 ")
    assert f"tcp://127.0.0.1:{listening} ok" in lines[ha1 + 2]
    assert lines[-1].startswith("status: degraded (exit 1) in ")


def test_a_service_on_another_host_is_its_hosts_to_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked from ha2, web1 (on ha1) is not checked from here: a guest network need not reach
    past its host, and its monitor there runs the checks; even a closed port is no problem."""
    monkeypatch.setattr(status, "this_host", lambda: "ha2")
    rc, snap = run_status(cib(tmp_path, checks={"tcp_check": f"127.0.0.1:{closed_port()}"}))
    web = snap["vms"][0]["services"][0]
    assert [c["ok"] for c in web["checks"]] == [None] and "asked from ha1" in web["checks"][0]["reason"]
    assert rc == 1 and snap["problems"] == []


def test_no_cluster_to_ask_is_cannot_tell(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = status.main([], stdout=out, stderr=err, env={"CIB_file": str(tmp_path / "missing.xml")})
    assert rc == 3 and err.getvalue().startswith("vmha status: cannot tell: crm_mon: Could not connect to the CIB")
    assert len(err.getvalue().splitlines()) == 1


def test_the_runner_passes_on_only_the_cluster_variables() -> None:
    from vmha.ops import cluster_env

    assert cluster_env({"CIB_file": "/x", "PCMK_trace": "1", "PATH": "/bad", "LD_PRELOAD": "evil.so"}) == {
        "CIB_file": "/x",
        "PCMK_trace": "1",
    }
