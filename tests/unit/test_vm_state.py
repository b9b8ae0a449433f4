from __future__ import annotations

import libvirt
import pytest
from vmha.ocf.codes import OcfRc
from vmha.verdicts.domain_state import IO_ERROR_POLICIES, judge_state, judge_without_libvirt
from vmha.virt.domain import DomainState, DomainStatus, PausedReason, ShutdownMode

STATE_RC = {
    DomainState.NOSTATE: OcfRc.ERR_GENERIC,
    DomainState.RUNNING: OcfRc.SUCCESS,
    DomainState.BLOCKED: OcfRc.SUCCESS,
    DomainState.PAUSED: None,  # depends on the reason: below
    DomainState.SHUTDOWN: OcfRc.SUCCESS,
    DomainState.SHUTOFF: OcfRc.NOT_RUNNING,
    DomainState.CRASHED: OcfRc.NOT_RUNNING,
    DomainState.PMSUSPENDED: OcfRc.DEGRADED,
}

PAUSED_RC = {
    PausedReason.UNKNOWN: OcfRc.SUCCESS,
    PausedReason.USER: OcfRc.SUCCESS,
    PausedReason.MIGRATION: OcfRc.SUCCESS,
    PausedReason.SAVE: OcfRc.SUCCESS,
    PausedReason.DUMP: OcfRc.SUCCESS,
    PausedReason.IOERROR: None,  # depends on on_io_error: below
    PausedReason.WATCHDOG: OcfRc.ERR_GENERIC,
    PausedReason.FROM_SNAPSHOT: OcfRc.SUCCESS,
    PausedReason.SHUTTING_DOWN: OcfRc.SUCCESS,
    PausedReason.SNAPSHOT: OcfRc.SUCCESS,
    PausedReason.CRASHED: OcfRc.ERR_GENERIC,
    PausedReason.STARTING_UP: OcfRc.SUCCESS,
    PausedReason.POSTCOPY: OcfRc.SUCCESS,
    PausedReason.POSTCOPY_FAILED: OcfRc.ERR_GENERIC,
    PausedReason.API_ERROR: OcfRc.ERR_GENERIC,
}


def test_tables_cover_every_enum_member():
    assert set(STATE_RC) == set(DomainState)
    assert set(PAUSED_RC) == set(PausedReason)


@pytest.mark.parametrize("state", [s for s, rc in STATE_RC.items() if rc is not None])
def test_every_state(state):
    result = judge_state("vm1", DomainStatus(state, 0))
    assert result.rc == STATE_RC[state]
    assert result.ok is (result.rc == OcfRc.SUCCESS)
    if result.rc != OcfRc.SUCCESS:
        assert "vm1" in result.reason  # an operator must see which VM
    else:
        assert result.reason == ""


@pytest.mark.parametrize("reason", [r for r, rc in PAUSED_RC.items() if rc is not None])
def test_every_paused_reason(reason):
    result = judge_state("vm1", DomainStatus(DomainState.PAUSED, int(reason)))
    assert result.rc == PAUSED_RC[reason]
    if result.rc != OcfRc.SUCCESS:
        assert f"paused ({reason.name.lower()})" in result.reason


@pytest.mark.parametrize(("policy", "rc"), [("fail", OcfRc.ERR_GENERIC), ("degraded", OcfRc.DEGRADED)])
def test_io_error_follows_policy(policy, rc):
    result = judge_state("vm1", DomainStatus(DomainState.PAUSED, int(PausedReason.IOERROR)), on_io_error=policy)
    assert result.rc == rc
    assert "I/O error" in result.reason and "vm1" in result.reason


def test_io_error_policies_are_the_select_options():
    from vmha.virtual_machine.params import PARAMS

    (on_io_error,) = [p for p in PARAMS if p.name == "on_io_error"]
    assert on_io_error.options == IO_ERROR_POLICIES


def test_io_error_default_policy_fails():
    result = judge_state("vm1", DomainStatus(DomainState.PAUSED, int(PausedReason.IOERROR)))
    assert result.rc == OcfRc.ERR_GENERIC


@pytest.mark.parametrize("policy", IO_ERROR_POLICIES)
def test_io_error_policy_only_affects_io_error(policy):
    for reason in (PausedReason.USER, PausedReason.WATCHDOG):
        base = judge_state("vm1", DomainStatus(DomainState.PAUSED, int(reason)))
        assert judge_state("vm1", DomainStatus(DomainState.PAUSED, int(reason)), on_io_error=policy) == base


def test_unknown_paused_reason_from_a_newer_libvirt_fails_and_says_so():
    result = judge_state("vm1", DomainStatus(DomainState.PAUSED, 99))
    assert result.rc == OcfRc.ERR_GENERIC
    assert "reason 99" in result.reason


class TestWithoutLibvirt:
    def test_qemu_found_is_degraded_running(self):
        result = judge_without_libvirt("vm1", "qemu:///system", "timed out", 4242)
        assert result.rc == OcfRc.DEGRADED
        assert "4242" in result.reason and "qemu:///system" in result.reason and "timed out" in result.reason

    def test_no_qemu_is_not_running(self):
        result = judge_without_libvirt("vm1", "qemu:///system", "connection refused", None)
        assert result.rc == OcfRc.NOT_RUNNING
        assert "vm1" in result.reason

    def test_pid_zero_still_counts_as_found(self):
        assert judge_without_libvirt("vm1", "u", "w", 0).rc == OcfRc.DEGRADED


class TestDomainStatus:
    @pytest.mark.parametrize(
        ("state", "active"),
        [
            (DomainState.RUNNING, True),
            (DomainState.PAUSED, True),
            (DomainState.PMSUSPENDED, True),
            (DomainState.SHUTDOWN, True),
            (DomainState.SHUTOFF, False),
            (DomainState.CRASHED, False),
            (DomainState.NOSTATE, False),
        ],
    )
    def test_active(self, state, active):
        assert DomainStatus(state, 0).active is active

    def test_describe(self):
        assert DomainStatus(DomainState.SHUTOFF, 0).describe() == "shutoff"
        assert DomainStatus(DomainState.PAUSED, 5).describe() == "paused (ioerror)"
        assert DomainStatus(DomainState.PAUSED, 77).describe() == "paused (reason 77)"


class TestEnumsMatchLibvirt:
    """The enums claim libvirt's stable ABI values; check them against the real binding."""

    def test_domain_state(self):
        for member in DomainState:
            assert getattr(libvirt, f"VIR_DOMAIN_{member.name}") == member.value

    def test_paused_reason(self):
        for member in PausedReason:
            name = f"VIR_DOMAIN_PAUSED_{member.name}"
            if hasattr(libvirt, name):  # API_ERROR only in newer libvirt
                assert getattr(libvirt, name) == member.value, name

    def test_shutdown_mode(self):
        names = {
            "DEFAULT": "DEFAULT",
            "ACPI": "ACPI_POWER_BTN",
            "AGENT": "GUEST_AGENT",
            "INITCTL": "INITCTL",
            "SIGNAL": "SIGNAL",
            "PARAVIRT": "PARAVIRT",
        }
        for member in ShutdownMode:
            assert getattr(libvirt, f"VIR_DOMAIN_SHUTDOWN_{names[member.name]}") == member.value
