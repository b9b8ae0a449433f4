"""Guest liveness, the monitor at depth 10 and 20: a debounced guest-agent ping, then the
in-guest check command (``guest_check_command``).

The debounce state machine (boot grace, N misses, the failure policy) is
``vmha.verdicts.guest_liveness``; its state lives in the resource's state file. Imported by
the monitor only when OCF_CHECK_LEVEL asks for it.
"""

from __future__ import annotations

import time
from typing import Any

from vmha.ocf.codes import Degraded, GenericError, error_for
from vmha.virt.domain import Domain
from vmha.virt.errors import HypervisorUnreachable, VirtError
from vmha.virtual_machine.resource import Resource


def check_guest(res: Resource, dom: Domain) -> None:
    """Depth 10: a debounced guest-agent ping; depth 20: also the in-guest check command."""
    from vmha.verdicts.guest_liveness import LivenessPolicy, Ping, judge, ping_outcome
    from vmha.virt.guest_agent import GuestAgent

    level = 20 if res.ctx.check_level >= 20 else 10
    cached = res.state.get("config")
    if isinstance(cached, dict) and cached.get("has_guest_agent") is False:
        raise Degraded(f"depth-{level} check impossible: domain {dom.name} has no guest agent channel")
    budget = float(res.p.integer("guest_agent_timeout"))
    agent = GuestAgent(dom, call_timeout=budget)
    error: VirtError | None = None
    try:
        agent.ping(res.deadline.within(budget))
    except HypervisorUnreachable:
        raise  # libvirtd itself: the monitor's /proc fallback answers
    except VirtError as exc:
        error = exc
    ping = ping_outcome(error)
    if ping is None:
        raise Degraded(f"depth-{level} check unavailable for {dom.name}: {error.message if error else ''}")
    started = res.state.get("started")
    started_at = started.get("at") if isinstance(started, dict) else None
    previous = res.state.get("liveness")
    verdict = judge(
        previous if isinstance(previous, dict) else None,
        domain=dom.name,
        instance=f"{dom.uuid()}:{dom.domain_id()}",
        started_at=started_at if isinstance(started_at, (int, float)) else None,
        now=time.monotonic(),
        ping=ping,
        policy=LivenessPolicy(
            float(res.p.integer("guest_boot_grace")),
            res.p.integer("guest_misses"),
            res.p.text("on_guest_failure"),
        ),
    )
    if verdict.warning:
        res.log.warning(verdict.warning)
    # Rewrite the state file only when the phase or count changes (ALIVE -> ALIVE is the
    # usual monitor: no write, no tempfile import).
    keys = ("phase", "instance", "misses")
    if not isinstance(previous, dict) or any(previous.get(k) != verdict.state.get(k) for k in keys):
        res.state["liveness"] = verdict.state
        res.save_state()
    if verdict.rc != 0:
        raise error_for(verdict.rc, verdict.reason)
    command = res.p.text("guest_check_command")
    if level == 20 and command and ping is Ping.ANSWERED:
        _run_guest_check(res, agent, command, dom.name)


def _run_guest_check(res: Resource, agent: Any, command: str, name: str) -> None:
    """The in-guest check command (depth 20): exit 0 or the monitor fails."""
    from vmha.verdicts.guest_command import split_command

    argv = list(split_command(command, "guest_check_command"))  # validated: cannot refuse
    try:
        result = agent.run(argv, res.deadline.within(float(res.p.integer("guest_agent_timeout")) * 2))
    except VirtError as exc:
        raise GenericError(f"in-guest check of {name} could not run: {exc.message}") from None
    if result.exit_code != 0:
        raise GenericError(f"in-guest check of {name} failed ({result.describe()}): {result.last_line()[:60]}")
