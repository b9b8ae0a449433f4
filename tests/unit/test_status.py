"""vmha status without a cluster: the pieces that read answers and judge them.  Against
Pacemaker's real tools: tests/integration/test_status_cib.py; the live lab:
tests/lab/test_operator_tools.py."""

from __future__ import annotations

import io
import time

import pytest
from vmha.ops import status
from vmha.ops.status import Definitions, Host, Service, Snapshot, Vm


def test_crm_mon_times_both_formats() -> None:
    local = status.parse_time("Fri Dec  4 18:12:17 2026")
    assert local == time.mktime((2026, 12, 4, 18, 12, 17, 0, 0, -1))
    assert status.parse_time("2026-12-04 18:12:17 +00:00") == 1796407937.0
    assert status.parse_time("") is None and status.parse_time("yesterday") is None


def test_guest_agent_channel_state_from_the_live_xml() -> None:
    xml = (
        "<domain><devices><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' "
        "state='{}'/></channel></devices></domain>"
    )
    assert status.agent_channel(xml.format("connected")) == "connected"
    assert status.agent_channel(xml.format("disconnected")) == "disconnected"
    assert status.agent_channel("<domain><devices/></domain>") == "none"
    assert status.agent_channel("<domain") == "none"


def test_no_colour_off_a_terminal_or_with_no_color() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert status.Paint(io.StringIO(), {})("x", "red") == "x"
    assert status.Paint(Tty(), {"NO_COLOR": ""})("x", "red") == "x"
    assert status.Paint(Tty(), {"TERM": "dumb"})("x", "red") == "x"
    assert status.Paint(Tty(), {"TERM": "xterm"})("x", "red") == "\x1b[31mx\x1b[0m"


def test_stonith_admin_and_attrd_answers() -> None:
    # Pacemaker 2.1.5's own words (seen in the lab): singular for one, plural otherwise
    assert status._device_list("fence-lab\n1 fence device found\n") == ["fence-lab"]
    assert status._device_list("fence-a\nfence-b\n2 fence devices found\n") == ["fence-a", "fence-b"]
    assert status._device_list("0 fence devices found\n") == []
    out = 'name="health-vmha-reason" host="ha1" value="yellow: pool lab-pool 1.2% free"\n'
    out += 'name="health-vmha-reason" host="ha2" value=""\n'
    assert status._attr_values(out) == {"ha1": "yellow: pool lab-pool 1.2% free"}


def _snap() -> tuple[Snapshot, Definitions]:
    snap = Snapshot(dc="ha1", quorum=True, stonith_enabled=True)
    for name in ("ha1", "ha2"):
        snap.hosts[name] = Host(name, online=True, libvirt="answers", fence_devices=["fence-lab"])
    vm = Vm("vm1", "ocf:vmha:VirtualMachine", True, "vm1", role="Started", hosts=["ha1"], guest_agent="connected")
    vm.services.append(Service("web1", "vm1", "Started", ["ha1"], False, True, False))
    snap.vms["vm1"] = vm
    snap.n_plus_1 = "met"
    return snap, Definitions({"vm1": ("ocf:vmha:VirtualMachine", {})}, {"web1": {}}, ["fence-lab"], "lab")


def test_all_well_is_exit_0() -> None:
    snap, defs = _snap()
    status.judge(snap, defs)
    assert (snap.exit_code, snap.warnings, snap.problems) == (0, [], [])


@pytest.mark.parametrize(
    ("change", "code", "text"),
    [
        (lambda s: setattr(s, "stonith_enabled", False), 1, "fencing is disabled"),
        (lambda s: setattr(s.hosts["ha2"], "fence_devices", []), 1, "no fence device can fence ha2"),
        (lambda s: setattr(s.hosts["ha2"], "health", "yellow"), 1, "host ha2 health is yellow"),
        (lambda s: setattr(s.hosts["ha2"], "libvirt", "no answer within 2s"), 1, "host ha2: libvirt no answer"),
        (lambda s: s.hosts["ha2"].domains.update({"stray": {}}), 1, "host ha2 runs stray outside the cluster"),
        (lambda s: setattr(s, "n_plus_1", "not met"), 1, "N+1 not met"),
        (lambda s: setattr(s, "maintenance_mode", True), 1, "maintenance mode"),
        (lambda s: setattr(s.vms["vm1"], "guest_agent", "disconnected"), 1, "its guest agent does not answer"),
        (lambda s: setattr(s.hosts["ha2"], "online", False), 2, "host ha2 is offline"),
        (lambda s: setattr(s.hosts["ha2"], "unclean", True), 2, "host ha2 is unclean"),
        (lambda s: setattr(s.vms["vm1"], "hosts", []), 2, "VM vm1 is not running"),
        (lambda s: setattr(s.vms["vm1"], "hosts", ["ha1", "ha2"]), 2, "VM vm1 is active on ha1, ha2"),
        (lambda s: setattr(s.vms["vm1"].services[0], "hosts", []), 2, "service web1 in vm1 is not running"),
        (
            lambda s: s.vms["vm1"].services[0].checks.append(status.Check("tcp://x:1", False, "refused")),
            2,
            "service web1: refused",
        ),
        (lambda s: setattr(s, "quorum", False), 2, "no quorum"),
    ],
)
def test_what_makes_it_degraded_or_down(change, code, text) -> None:  # type: ignore[no-untyped-def]
    snap, defs = _snap()
    change(snap)
    status.judge(snap, defs)
    said = snap.problems if code == 2 else snap.warnings
    assert snap.exit_code == code and any(text in line for line in said), (snap.problems, snap.warnings)


def test_a_disabled_vm_is_not_down() -> None:
    snap, defs = _snap()
    snap.vms["vm1"].hosts, snap.vms["vm1"].target_stopped = [], True
    snap.vms["vm1"].services[0].hosts, snap.vms["vm1"].services[0].target_stopped = [], True
    status.judge(snap, defs)
    assert snap.exit_code == 0, (snap.problems, snap.warnings)


def test_bad_usage_is_one_line_and_cannot_tell() -> None:
    err = io.StringIO()
    assert status.main(["--frobnicate"], stdout=io.StringIO(), stderr=err) == 3
    assert err.getvalue().startswith("vmha status: unrecognized arguments") and err.getvalue().count("\n") == 1
    err = io.StringIO()
    assert status.main(["--timeout", "0"], stdout=io.StringIO(), stderr=err) == 3
    assert "--timeout must be above 0" in err.getvalue()


def test_the_reason_read_is_the_one_hypervisor_health_writes() -> None:
    from vmha.hypervisor_health.agent import reason_attribute

    assert status.REASON_ATTRIBUTE == reason_attribute(status.HEALTH_ATTRIBUTE) == "health-vmha-reason"


def test_no_hypervisor_health_is_said_not_green() -> None:
    from lxml import etree

    cib = etree.fromstring(
        b"<cib><configuration><crm_config/><resources>"
        b'<primitive id="fence-lab" class="stonith" type="fence_vmhalab"/>'
        b"</resources></configuration></cib>"
    )
    assert status.read_cib(cib).health_watched is False
    snap = Snapshot(health_watched=False)
    snap.hosts["ha1"] = Host("ha1")
    text = status.render_text(snap, status.Paint(io.StringIO(), {}))
    assert "health not watched (no HypervisorHealth)" in text
    cib.find("configuration/resources").append(
        etree.fromstring(b'<primitive id="hv" class="ocf" provider="vmha" type="HypervisorHealth"/>')
    )
    assert status.read_cib(cib).health_watched is True
