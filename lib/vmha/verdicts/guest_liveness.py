"""Is the guest alive?  A debounced verdict from guest agent pings, one per monitor.

A single ping is a poor witness: a guest that is still booting has no agent yet, a guest
under load can miss one answer, and a guest that reboots by itself closes the agent's
channel for a while.  Restarting a VM for any of these would turn a blip into an outage, so
the monitor feeds each ping's outcome into this small state machine, and only a guest whose
agent stays silent for ``misses`` consecutive monitors after its grace period is failed.

Each call takes the previous state (a small dict the caller keeps in its state file under
HA_RSCTMP) and one observation, and returns the verdict and the next state.  No I/O here.

::

     any state ── new domain instance ──> BOOTING (grace counted from started_at)

                  answered
     ┌─────────┐ ──────────> ┌───────┐ <──────────────────────┐
     │ BOOTING │             │ ALIVE │                        │
     └─────────┘ <────────── └───────┘                        │
          │     not connected    │                            │
          │     (guest reboots)  │ silent                     │
          │                      v                            │
          │ silent after    ┌─────────┐  answered             │
          └───────────────> │ MISSING │ ──────────────────────┤
            the grace       │  k < N  │ ──┐ silent: k + 1     │
                            └─────────┘ <─┘                   │
                                 │ silent, k + 1 = N          │
                                 v                            │
                            ┌────────┐   answered             │
                            │ FAILED │ ───────────────────────┘
                            └────────┘ ──┐ silent: stays FAILED,
                                     ^───┘ the policy answers again

    BOOTING  the agent has not answered since the domain (re)started; within ``grace_s`` of
             that start nothing counts; after it, each silent check is a miss.
    ALIVE    the last check answered.
    MISSING  k consecutive silent checks (1 <= k < N): still reported running, with a warning.
    FAILED   N consecutive silent checks: the policy decides: ``restart`` -> 1 (Pacemaker
             recovers the VM), ``degraded`` -> 190, ``ignore`` -> 0 with a warning.

"Silent" is any ping without an answer: not connected, unresponsive, or timed out.  The one
exception is ALIVE -> not connected: the guest closed its agent channel, which is what a
reboot inside the guest does, so it goes back to BOOTING with a fresh grace period (a hung
guest does not close the channel; it stops answering, which is a miss).

A new domain instance (the caller's ``instance`` string changes, e.g. libvirt's domain ID or
the QEMU PID) always starts over in BOOTING from ``started_at``.  Times are seconds on one
clock the caller keeps across processes (``time.monotonic()`` is system-wide on Linux and
HA_RSCTMP is emptied at boot, so they agree).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple

from vmha.ocf.codes import OcfRc
from vmha.virt.errors import AgentNotConnected, AgentUnresponsive, VirtError

POLICIES = ("restart", "degraded", "ignore")


class Phase(Enum):
    BOOTING = "booting"
    ALIVE = "alive"
    MISSING = "missing"
    FAILED = "failed"


class Ping(Enum):
    """One check's outcome, as the guest agent client reported it."""

    ANSWERED = "answered"
    NOT_CONNECTED = "not connected"
    UNRESPONSIVE = "unresponsive"


def ping_outcome(error: VirtError | None) -> Ping | None:
    """The observation a ping's outcome makes: ``None`` for no error (answered).

    Returns None for an error that says nothing about the guest's liveness (the hypervisor
    driver has no agent, the agent refuses guest-ping, libvirtd does not answer): the caller
    reports that as it is instead of counting it as a miss.
    """
    if error is None:
        return Ping.ANSWERED
    if isinstance(error, AgentNotConnected):
        return Ping.NOT_CONNECTED
    if isinstance(error, AgentUnresponsive):
        return Ping.UNRESPONSIVE
    return None


class LivenessPolicy(NamedTuple):
    grace_s: float = 300.0
    misses: int = 3
    on_failure: str = "restart"


class LivenessVerdict(NamedTuple):
    rc: OcfRc
    reason: str
    state: dict[str, Any]
    # Something the operator should see in the log even when rc is 0.
    warning: str = ""

    @property
    def phase(self) -> Phase:
        return Phase(self.state["phase"])


def _state(phase: Phase, instance: str, since: float, misses: int = 0) -> dict[str, Any]:
    return {"phase": phase.value, "instance": instance, "since": since, "misses": misses}


def _read(state: dict[str, Any] | None) -> tuple[Phase, str, float, int] | None:
    """The stored state, or None when there is none or it is not ours (a torn file)."""
    if not isinstance(state, dict):
        return None
    try:
        phase = Phase(state.get("phase"))
        instance = state["instance"]
        since = float(state["since"])
        misses = int(state.get("misses", 0))
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(instance, str) or misses < 0:
        return None
    return phase, instance, since, misses


def judge(
    state: dict[str, Any] | None,
    *,
    domain: str,
    instance: str,
    started_at: float | None,
    now: float,
    ping: Ping,
    policy: LivenessPolicy,
) -> LivenessVerdict:
    """The verdict for this check and the state to store for the next one.

    ``started_at`` is when this domain instance started (None when unknown: then from the
    first check that saw it).  ``policy.misses`` below 1 is read as 1.
    """
    needed = max(1, policy.misses)
    prev = _read(state)
    if prev is None or prev[1] != instance:
        since = started_at if started_at is not None and started_at <= now else now
        phase, misses = Phase.BOOTING, 0
    else:
        phase, _inst, since, misses = prev

    if ping is Ping.ANSWERED:
        warning = ""
        if phase in (Phase.MISSING, Phase.FAILED):
            warning = f"guest agent of {domain} answers again after {misses} silent check(s)"
        return LivenessVerdict(OcfRc.SUCCESS, "", _state(Phase.ALIVE, instance, now), warning)

    silence = "is not connected" if ping is Ping.NOT_CONNECTED else "does not answer"

    if phase is Phase.ALIVE and ping is Ping.NOT_CONNECTED:
        # The guest closed the channel: it is rebooting (or its agent was stopped).
        return LivenessVerdict(
            OcfRc.SUCCESS,
            "",
            _state(Phase.BOOTING, instance, now),
            f"guest agent of {domain} disconnected; allowing {policy.grace_s:g}s for the guest to come back",
        )

    if phase is Phase.BOOTING:
        waited = max(0.0, now - since)
        if waited < policy.grace_s:
            return LivenessVerdict(OcfRc.SUCCESS, "", _state(Phase.BOOTING, instance, since))
        misses = 0  # the grace period is over: from now on every silent check counts

    misses += 1
    if misses < needed:
        return LivenessVerdict(
            OcfRc.SUCCESS,
            "",
            _state(Phase.MISSING, instance, since, misses),
            f"guest agent of {domain} {silence} ({misses} of {needed} checks before it counts as failed)",
        )

    reason = f"guest {domain} not alive: its guest agent {silence} ({misses} checks in a row)"
    next_state = _state(Phase.FAILED, instance, since, misses)
    if policy.on_failure == "degraded":
        return LivenessVerdict(OcfRc.DEGRADED, reason, next_state)
    if policy.on_failure == "ignore":
        return LivenessVerdict(OcfRc.SUCCESS, "", next_state, reason + "; ignored (liveness policy)")
    return LivenessVerdict(OcfRc.ERR_GENERIC, reason, next_state)
