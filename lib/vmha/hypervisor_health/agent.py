"""ocf:vmha:HypervisorHealth: the host and its virtualization layer as node health.

Run as a clone on every hypervisor.  Each monitor checks libvirtd, memory headroom, storage
pools, the interfaces the VMs use and what the kernel says about the hardware (EDAC, thermal
zones, disk I/O errors, md RAID); ``vmha.verdicts.host_health`` turns the facts into green,
yellow or red, the worst wins, and the colour goes to the node attribute ``#health-vmha``
through attrd, where Pacemaker's node-health-strategy (e.g. migrate-on-red) acts on it.  The
node's capacity (cpu, hv_memory) goes to its utilization for placement-strategy.

Where the parts are: this module has the actions (start, stop, monitor, validate-all,
reload-agent), the agent's time and its state file; ``assess`` runs the checks and
``publish`` writes to the cluster (the health attribute with its red claim, the
utilization); ``host_facts`` reads /proc and /sys; ``params`` declares the parameters.

Why the monitor returns 0 whatever the colour: the colour is the agent's report, not its
failure; a monitor that failed on red would make Pacemaker restart the health agent instead
of moving the VMs.  It fails only when it cannot do its job: attrd_updater missing (5), or
the attribute not written attrd_failures times in a row (1).

Why red is sometimes published as yellow: red on every node would stop every VM in the
cluster (see ``vmha.hypervisor_health.publish``).

Why stop deletes the attribute: a stopped health agent must not leave a red (or yellow)
behind that keeps VMs off this host forever.

What we remember between invocations (one JSON file under HA_RSCTMP, emptied at boot):
  running      the marker start writes and stop removes; a probe answers from it alone,
               so probes work on a host where the cluster is not (yet) running
  published    the value last written to attrd (written again only when it changes, when
               a probe saw the cluster restart here, or every REASSERT_S)
  utilization  the values last written with crm_attribute
  counters     EDAC and disk error counters of the last monitor (only increases count)
  holds        findings from counter increases, kept for counter_hold seconds
  hypervisor_down_since  when libvirtd first failed to answer, while it does not
               (hypervisor_grace); gone once it answers or the check is off
  claim        our red claim while we hold one (withdrawn once the red is out, or at the
               next monitor or stop when a killed monitor left it behind)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from vmha import __version__
from vmha.agent_common import handler
from vmha.deadline import Deadline
from vmha.hypervisor_health.assess import assess
from vmha.hypervisor_health.params import PARAMS
from vmha.hypervisor_health.publish import Publisher
from vmha.ocf import statefile
from vmha.ocf.cluster import ClusterTools
from vmha.ocf.codes import NotConfigured, NotInstalled, NotRunning, OcfError
from vmha.ocf.context import OcfContext
from vmha.ocf.dispatch import watchdog_margin
from vmha.ocf.log import Log
from vmha.ocf.params import pacemaker_true
from vmha.ocf.runner import CommandError, CommandNotFound, CommandRunner, find_program
from vmha.ocf.spec import Action, AgentSpec, Handler
from vmha.verdicts import host_health as hh
from vmha.verdicts.host_health import Finding, Level, Verdict

AGENT = "HypervisorHealth"
# Longest any single cluster command may take; attrd and the CIB answer in milliseconds.
COMMAND_TIMEOUT_S = 5.0


def reason_attribute(health_attribute: str) -> str:
    """The private attribute that carries the reason for ``health_attribute``'s colour."""
    return f"{health_attribute.lstrip('#')}-reason"


class HypervisorHealth:
    """One invocation of the agent."""

    def __init__(
        self,
        ctx: OcfContext,
        log: Log,
        runner: CommandRunner | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.log = log
        self.p = ctx.params
        self.uri = self.p.text("hypervisor")
        self.root = self.p.text("host_root") or "/"
        self.runner = runner or CommandRunner(ctx.env)
        self.tools = ClusterTools(self.runner)
        self.clock = clock
        self.deadline = ctx.deadline().earlier(watchdog_margin(ctx.timeout_s) + 0.5)
        self._store = statefile.Store(statefile.state_path(ctx.rsc_tmp, AGENT, ctx.instance), log.warning)
        self.cluster = Publisher(
            self.tools,
            self._store,
            log,
            attribute=self.p.text("health_attribute"),
            on_node=ctx.on_node,
            command_timeout=self._command_timeout,
            clock=clock,
            wall=wall,
        )

    # -- what we remember ------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        return self._store.data

    def _save_state(self) -> None:
        self._store.save()

    def running(self) -> bool:
        return isinstance(self.state.get("running"), dict)

    # -- time ------------------------------------------------------------------------------

    def _command_timeout(self) -> float:
        return min(COMMAND_TIMEOUT_S, self.deadline.remaining())

    def _libvirt_deadline(self) -> Deadline:
        # Keep time for the cluster commands after the checks: reading the peers, writing
        # the attribute and utilization (each answers in milliseconds when attrd is up).
        reserve = min(4.0, max(1.0, self.ctx.timeout_s * 0.3))
        return self.deadline.earlier(reserve).within(float(self.p.integer("libvirt_timeout")))

    # -- one round: check, decide, report, publish -----------------------------------------

    def _evaluate_and_publish(self, *, force: bool) -> Verdict:
        self.cluster.release_claim()  # one left by a monitor killed half way through
        found = assess(
            self.p,
            self.state,
            self.log,
            uri=self.uri,
            root=self.root,
            libvirt_deadline=self._libvirt_deadline,
            clock=self.clock,
            node=self.ctx.on_node or os.uname().nodename,
        )
        verdict = self.cluster.decide(found.findings)
        self.report(found.findings, verdict)
        republish = force or bool(self.state.get("republish"))
        # start fails at the first failed write; a monitor only after attrd_failures in a row
        fail_after = 1 if self.ctx.action == "start" else self.p.integer("attrd_failures")
        try:
            self.cluster.publish(verdict.level, force=force, fail_after=fail_after)
        finally:
            self.cluster.release_claim()  # after the red is out: a rival sees the claim or the red
            self._save_state()
        if self.p.flag("set_utilization"):
            self.cluster.publish_utilization(
                found.cpus,
                found.memory_mib,
                reserved_cpus=self.p.integer("reserved_cpus"),
                reserved_memory_mib=self.p.integer("reserved_memory_mib"),
                force=force,
            )
        self._publish_reason(found.findings, verdict, force=republish)
        return verdict

    def _publish_reason(self, findings: Sequence[Finding], verdict: Verdict, *, force: bool) -> None:
        """Why the node has its colour, for ``vmha status``: a private attrd attribute
        (``health-vmha-reason`` beside ``#health-vmha``; never in the CIB, so no transition),
        written when the text changes.  A failure costs only the reason shown."""
        text = hh.summary(findings)
        if verdict.capped and verdict.reason:
            text = f"{text}; {verdict.reason}" if text else verdict.reason
        if not force and self.state.get("reason_published") == text:
            return
        try:
            self.tools.set_node_attribute(
                reason_attribute(self.p.text("health_attribute")), text, private=True, timeout=self._command_timeout()
            )
        except CommandError as exc:
            self.log.debug(f"health reason not published: {exc}")
            return
        self.state["reason_published"] = text

    def report(self, findings: Sequence[Finding], verdict: Verdict) -> None:
        """Log the health when it changes (the monitor is frequent; the log is not a ticker)."""
        text = hh.summary(findings)
        line = f"health {verdict.level.colour}" + (f" ({text})" if text else "")
        if verdict.capped:
            line += f"; {verdict.reason}"
        last = self.state.get("last_report")
        self.state["health"] = {"level": verdict.level.colour, "findings": text, "capped": verdict.capped}
        if line == last:
            self.log.debug(line)
            return
        self.state["last_report"] = line
        if verdict.capped or verdict.level is Level.RED:
            self.log.warning(line)
        else:
            self.log.info(line)

    # -- actions ---------------------------------------------------------------------------

    def monitor(self) -> str | None:
        """Returns a note (an exit reason on success) when a red was capped to yellow."""
        if not self.running():
            raise NotRunning(f"{AGENT} is not running on this node")
        if self.ctx.is_probe:
            # Answered from local state: a probe must work without the cluster.  A probe of a
            # running instance means Pacemaker (re)started here and attrd may have lost our
            # value: the next monitor writes it again.
            if not self.state.get("republish"):
                self.state["republish"] = True
                self._save_state()
            return None
        verdict = self._evaluate_and_publish(force=False)
        self._save_state()
        return verdict.reason if verdict.capped else None

    def start(self) -> str | None:
        self.validate()
        self._check_allow_unhealthy_nodes()
        verdict = self._evaluate_and_publish(force=True)
        self.state["running"] = {"since": time.time()}
        self._save_state()
        return verdict.reason if verdict.capped else None

    def _check_allow_unhealthy_nodes(self) -> None:
        """Warn when the clone lacks allow-unhealthy-nodes=true: without it migrate-on-red
        stops this agent on its own red node, the stop removes the red, the node is healthy
        again, the agent starts, and round it goes.  Pacemaker does not pass that meta
        attribute to the agent, so the configuration is asked (once, at start).  Raises
        nothing: not knowing only costs the warning."""
        try:
            value = self.tools.top_level_meta(
                self.ctx.resource_id, "allow-unhealthy-nodes", timeout=self._command_timeout()
            )
        except CommandError as exc:
            self.log.debug(f"allow-unhealthy-nodes not read: {exc}")
            return
        if not pacemaker_true(value):
            # The scheduler reads it on the clone only; on the primitive it does nothing.
            self.log.warning("set meta allow-unhealthy-nodes=true on this clone: a red node stops its health agent")

    def stop(self) -> None:
        self.cluster.release_claim()
        self.cluster.remove(self.deadline)
        statefile.remove(self._store.path)

    def validate(self) -> None:
        """Raises NotInstalled when a tool the agent needs is missing."""
        needed = ["attrd_updater", "crm_node"]
        if self.p.flag("set_utilization"):
            needed.append("crm_attribute")
        for tool in needed:
            try:
                find_program(tool)
            except CommandNotFound as exc:
                raise NotInstalled(str(exc)) from None
        pools = self.p.text("storage_pools").split()
        if pools and not self.p.flag("check_storage"):
            self.log.warning("storage_pools is set but check_storage is off: the pools are not checked")
        if self.p.integer("pool_free_red_percent") > self.p.integer("pool_free_yellow_percent"):
            raise NotConfigured("pool_free_red_percent is above pool_free_yellow_percent")

    def validate_all(self) -> None:
        self.validate()

    def reload_agent(self) -> None:
        self.validate()
        # New reserved_* values differ from what was written and go out at the next monitor;
        # a retry pause from the old settings must not delay them.
        self.state.pop("utilization_retry_at", None)
        if self.running():
            self._save_state()


def _handler(method: str) -> Handler:
    return handler(HypervisorHealth, method)


LONGDESC = (
    "Reports the health of this hypervisor host as the node attribute #health-vmha (green, "
    "yellow, red) for Pacemaker's node-health-strategy, and its capacity as node utilization "
    "(cpu, hv_memory, host_memory) for placement-strategy. Run it as a clone on every host, "
    "with meta allow-unhealthy-nodes=true. Checks, each "
    "switchable: libvirtd answers, memory headroom for the running domains, storage pools "
    "active and with free space, the VMs' bridges and interfaces up, EDAC memory errors, "
    "thermal trip points, disk I/O errors and degraded md RAID. The monitor returns 0 "
    "whatever the health (the attribute carries it) and fails only when it cannot write the "
    "attribute. A host turns red only when another online node is green (two hosts falling "
    "sick together claim red through attrd first, and only one of them gets it) and stays red "
    "while another node is green or yellow: otherwise it stays yellow, so node health can never "
    "stop every VM in the cluster. Stop removes the "
    "attribute. Set node-health-strategy=migrate-on-red and placement-strategy=utilization "
    "(or balanced) in the cluster properties."
)

SPEC = AgentSpec(
    name=AGENT,
    version=__version__,
    shortdesc="Hypervisor host health as node health and utilization",
    longdesc=LONGDESC,
    params=PARAMS,
    actions=(
        Action("start", 30, _handler("start")),
        Action("stop", 30, _handler("stop")),
        Action("monitor", 30, _handler("monitor"), interval_s=30),
        Action("status", 30, _handler("monitor"), advertise=False),
        Action("validate-all", 10, _handler("validate_all")),
        Action("reload-agent", 10, _handler("reload_agent")),
    ),
)


def main(argv: list[str], env: dict[str, str]) -> int:
    from vmha.ocf.dispatch import run

    return run(SPEC, argv, env)


__all__ = ["SPEC", "main", "HypervisorHealth", "OcfError"]
