"""Every transition of the guest liveness state machine (vmha.verdicts.guest_liveness)."""

from __future__ import annotations

import pytest
from vmha.ocf.codes import OcfRc
from vmha.verdicts.guest_liveness import LivenessPolicy, Phase, Ping, judge, ping_outcome
from vmha.virt import errors

POLICY = LivenessPolicy(grace_s=100.0, misses=3, on_failure="restart")
OK, GONE, SILENT = Ping.ANSWERED, Ping.NOT_CONNECTED, Ping.UNRESPONSIVE


def step(state, ping, now, *, instance="id-7", started_at=0.0, policy=POLICY):
    return judge(state, domain="web1", instance=instance, started_at=started_at, now=now, ping=ping, policy=policy)


def run(pings, *, policy=POLICY, start_now=200.0, every=10.0):
    """Feed ``pings`` one monitor apart; returns every verdict."""
    state, verdicts = None, []
    for i, ping in enumerate(pings):
        verdict = step(state, ping, start_now + i * every, policy=policy)
        verdicts.append(verdict)
        state = verdict.state
    return verdicts


# -- BOOTING -----------------------------------------------------------------------------


@pytest.mark.parametrize("ping", [GONE, SILENT])
def test_no_state_within_grace_is_booting(ping):
    v = step(None, ping, now=50.0)
    assert (v.rc, v.phase, v.warning) == (OcfRc.SUCCESS, Phase.BOOTING, "")
    assert v.state["since"] == 0.0  # counted from the domain's start, not from this check


def test_booting_stays_booting_until_grace_ends():
    v1 = step(None, GONE, now=10.0)
    v2 = step(v1.state, SILENT, now=99.0)
    assert (v2.rc, v2.phase) == (OcfRc.SUCCESS, Phase.BOOTING)


def test_booting_answered_is_alive():
    v1 = step(None, GONE, now=10.0)
    v2 = step(v1.state, OK, now=20.0)
    assert (v2.rc, v2.phase, v2.state["misses"]) == (OcfRc.SUCCESS, Phase.ALIVE, 0)


def test_booting_after_grace_silent_is_a_first_miss():
    v1 = step(None, GONE, now=10.0)
    v2 = step(v1.state, GONE, now=100.0)
    assert (v2.rc, v2.phase, v2.state["misses"]) == (OcfRc.SUCCESS, Phase.MISSING, 1)
    assert "1 of 3" in v2.warning


def test_unknown_start_time_counts_from_first_check():
    v1 = step(None, GONE, now=500.0, started_at=None)
    assert v1.state["since"] == 500.0 and v1.phase is Phase.BOOTING
    assert step(v1.state, GONE, now=599.0, started_at=None).phase is Phase.BOOTING
    assert step(v1.state, GONE, now=600.0, started_at=None).phase is Phase.MISSING


def test_start_time_in_the_future_is_read_as_now():
    v = step(None, GONE, now=10.0, started_at=50.0)
    assert v.state["since"] == 10.0


def test_never_answering_agent_fails_after_grace_and_n_misses():
    verdicts = run([GONE] * 12, start_now=0.0)
    phases = [v.phase for v in verdicts]
    assert phases[:10] == [Phase.BOOTING] * 10  # 0..90 s: grace
    assert phases[10:] == [Phase.MISSING, Phase.MISSING]
    v = step(verdicts[-1].state, GONE, now=120.0)
    assert (v.rc, v.phase) == (OcfRc.ERR_GENERIC, Phase.FAILED)
    assert v.reason.startswith("guest web1 not alive: its guest agent is not connected")


# -- ALIVE -------------------------------------------------------------------------------


def test_alive_answered_stays_alive():
    v = run([OK, OK])[-1]
    assert (v.rc, v.phase, v.warning) == (OcfRc.SUCCESS, Phase.ALIVE, "")


def test_alive_unresponsive_is_a_miss_not_a_failure():
    v = run([OK, SILENT])[-1]
    assert (v.rc, v.phase, v.state["misses"]) == (OcfRc.SUCCESS, Phase.MISSING, 1)
    assert "does not answer" in v.warning


def test_alive_disconnected_is_a_reboot_with_fresh_grace():
    verdicts = run([OK, GONE])
    v = verdicts[-1]
    assert (v.rc, v.phase) == (OcfRc.SUCCESS, Phase.BOOTING)
    assert v.state["since"] == 210.0 and "disconnected" in v.warning
    # Within the new grace period nothing counts; after it, silence counts.
    assert step(v.state, GONE, now=309.0).phase is Phase.BOOTING
    assert step(v.state, GONE, now=310.0).phase is Phase.MISSING


# -- MISSING -----------------------------------------------------------------------------


def test_missing_answered_is_alive_again_with_a_note():
    v = run([OK, SILENT, SILENT, OK])[-1]
    assert (v.rc, v.phase, v.state["misses"]) == (OcfRc.SUCCESS, Phase.ALIVE, 0)
    assert "answers again after 2" in v.warning


def test_missing_counts_consecutive_misses_of_either_kind():
    verdicts = run([OK, SILENT, GONE])
    assert [v.state["misses"] for v in verdicts] == [0, 1, 2]
    assert verdicts[-1].phase is Phase.MISSING  # not connected after a miss is not a reboot


def test_missing_reaches_n_is_failed():
    v = run([OK, SILENT, SILENT, SILENT])[-1]
    assert (v.rc, v.phase, v.state["misses"]) == (OcfRc.ERR_GENERIC, Phase.FAILED, 3)
    assert "3 checks in a row" in v.reason


def test_an_answer_in_between_resets_the_count():
    verdicts = run([OK, SILENT, SILENT, OK, SILENT, SILENT])
    assert all(v.rc == OcfRc.SUCCESS for v in verdicts)


# -- FAILED and the policies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_failure", "rc", "has_reason", "has_warning"),
    [
        ("restart", OcfRc.ERR_GENERIC, True, False),
        ("degraded", OcfRc.DEGRADED, True, False),
        ("ignore", OcfRc.SUCCESS, False, True),
    ],
)
def test_policy_decides_the_failed_answer(on_failure, rc, has_reason, has_warning):
    policy = POLICY._replace(on_failure=on_failure)
    v = run([OK, SILENT, SILENT, SILENT], policy=policy)[-1]
    assert v.phase is Phase.FAILED
    assert v.rc == rc
    assert bool(v.reason) is has_reason
    assert bool(v.warning) is has_warning


def test_failed_stays_failed_while_silent():
    policy = POLICY._replace(on_failure="degraded")
    verdicts = run([OK, SILENT, SILENT, SILENT, SILENT, GONE], policy=policy)
    assert [v.rc for v in verdicts[3:]] == [OcfRc.DEGRADED] * 3
    assert verdicts[-1].state["misses"] == 5


def test_failed_answered_is_alive():
    v = run([OK, SILENT, SILENT, SILENT, OK])[-1]
    assert (v.rc, v.phase) == (OcfRc.SUCCESS, Phase.ALIVE)
    assert "answers again after 3" in v.warning


# -- a new domain instance, and what is stored ------------------------------------------


@pytest.mark.parametrize("prefix", [[OK], [OK, SILENT], [OK, SILENT, SILENT, SILENT]])
def test_new_instance_starts_over_in_booting(prefix):
    state = run(prefix)[-1].state
    v = step(state, GONE, now=300.0, instance="id-8", started_at=290.0)
    assert (v.rc, v.phase, v.state["instance"], v.state["since"], v.state["misses"]) == (
        OcfRc.SUCCESS,
        Phase.BOOTING,
        "id-8",
        290.0,
        0,
    )


@pytest.mark.parametrize(
    "junk",
    [
        {},
        {"phase": "zombie", "instance": "id-7", "since": 0},
        {"phase": "alive", "since": "x"},
        [],
        "x",
        {"phase": "missing", "instance": "id-7", "since": 0, "misses": -1},
    ],
)
def test_a_torn_or_foreign_state_reads_as_none(junk):
    v = step(junk, GONE, now=50.0)
    assert v.phase is Phase.BOOTING and v.state["since"] == 0.0


def test_state_is_a_small_json_friendly_dict():
    import json

    state = run([OK, SILENT])[-1].state
    assert json.loads(json.dumps(state)) == state
    assert set(state) == {"phase", "instance", "since", "misses"}


def test_one_miss_policy_below_one_is_one():
    v = run([OK, SILENT], policy=POLICY._replace(misses=0))[-1]
    assert v.phase is Phase.FAILED


def test_answer_with_no_state_is_alive():
    v = step(None, OK, now=5.0)
    assert (v.rc, v.phase, v.warning) == (OcfRc.SUCCESS, Phase.ALIVE, "")


@pytest.mark.parametrize(
    ("error", "ping"),
    [
        (None, Ping.ANSWERED),
        (errors.AgentNotConnected("not connected"), Ping.NOT_CONNECTED),
        (errors.AgentUnresponsive("silent"), Ping.UNRESPONSIVE),
        (errors.OperationUnsupported("no agent support in this driver"), None),
        (errors.HypervisorTimeout("libvirtd hung"), None),
        (errors.OperationInvalid("domain is not running"), None),
    ],
)
def test_ping_outcome(error, ping):
    assert ping_outcome(error) is ping
