"""What HypervisorHealth tells the cluster: the health attribute and the node's utilization.

The health attribute (``#health-vmha``) is written through attrd with ``attrd_updater``,
only when it changes, when a probe saw the cluster restart here, or every ``REASSERT_S``.

Why red is sometimes published as yellow: with migrate-on-red, red on every node stops every
VM in the cluster.  Before publishing red the agent reads the other nodes' attribute and
stays yellow unless one of them is online and green (``cap_red``).  Two hosts turning red at
the same moment would each see the other green: a host claims red first and steps back when
another host claims it too (``rival_claims``), so at most one of them turns red.  Checked
again at every monitor while red: a red host stays red while another node is green or yellow
(its VMs are moving there) and steps back to yellow once every other node is red.

The node's capacity (cpu, hv_memory, host_memory) goes to its utilization with
``crm_attribute``, written on change only through ``vmha.ocf.utilization``.

The state keys kept here: ``published``, ``published_at``, ``attrd_failures``, ``republish``
(set by a probe), ``claim``, ``utilization`` and ``utilization_retry_at``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from vmha.deadline import Deadline
from vmha.ocf import statefile, utilization
from vmha.ocf.cluster import AttrdNotRunning, ClusterTools
from vmha.ocf.codes import GenericError, NotInstalled
from vmha.ocf.log import Log
from vmha.ocf.runner import CommandError, CommandNotFound
from vmha.verdicts import host_health as hh
from vmha.verdicts.host_health import Finding, Level, Verdict

UTILIZATION_RETRY_S = 60.0
# An unchanged value is written again this often: attrd forgets a node's values when
# Pacemaker restarts there, and a red that silently vanished would let VMs come back.
REASSERT_S = 600.0
# The red claim (see vmha.verdicts.host_health.rival_claims): how long to wait for attrd to
# give our own claim back (it answers in milliseconds), and when another node's claim is
# old enough to be a leftover.
CLAIM_WAIT_S = 2.0
CLAIM_POLL_S = 0.05
CLAIM_STALE_S = 120.0


class Publisher:
    """This node's health attribute, its red claim and its utilization, for one invocation.

    ``store`` is the agent's state file (saved here only before a failure is raised);
    ``command_timeout`` gives the timeout of one cluster command started now.
    """

    def __init__(
        self,
        tools: ClusterTools,
        store: statefile.Store,
        log: Log,
        *,
        attribute: str,
        on_node: str,
        command_timeout: Callable[[], float],
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.tools = tools
        self._store = store
        self.log = log
        self.attribute = attribute
        self.claim_attribute = "vmha-red-claim" + attribute[len("#health") :]
        self._on_node = on_node
        self._command_timeout = command_timeout
        self.clock = clock
        self.wall = wall
        self._node: str | None = None

    @property
    def state(self) -> dict[str, Any]:
        return self._store.data

    def node_name(self) -> str:
        """This node's name: Pacemaker passes it to every action; crm_node asks otherwise.

        Raises CommandError.
        """
        if self._node is None:
            self._node = self._on_node or self.tools.local_node(timeout=self._command_timeout())
        return self._node

    # -- the cluster-wide rule -------------------------------------------------------------

    def read_peers(self) -> tuple[list[hh.PeerView] | None, str]:
        try:
            members = self.tools.members(timeout=self._command_timeout())
            values = self.tools.query_node_attribute(self.attribute, timeout=self._command_timeout())
        except CommandError as exc:
            return None, str(exc)
        return hh.merge_peers(members, values), ""

    def decide(self, findings: Sequence[Finding]) -> Verdict:
        """The level to publish; a red that is not yet published is claimed first, and the
        claim stays held (``state["claim"]``) until the red is out."""
        level = hh.worst(findings)
        if level is not Level.RED:
            return Verdict(level, False, "")
        try:
            local = self.node_name()
        except CommandError as exc:
            return hh.cap_red("", level, None, f"this node's name is unknown: {exc}")
        peers, problem = self.read_peers()
        staying = self.state.get("published") == "red"
        verdict = hh.cap_red(local, level, peers, problem, staying=staying)
        if verdict.level is not Level.RED or staying:
            return verdict
        return self._claim_red(local)

    def _claim_red(self, local: str) -> Verdict:
        """Claim red, then publish it only if no other node claims it too (see the module
        docstring of vmha.verdicts.host_health)."""
        stamp = f"{self.wall():.3f}"
        try:
            self.tools.set_node_attribute(self.claim_attribute, stamp, private=True, timeout=self._command_timeout())
            self.state["claim"] = stamp
            claims = self._own_claim_back(local, stamp)
            if claims is None:
                self.release_claim()
                return Verdict(Level.YELLOW, True, "red capped to yellow: attrd did not confirm the red claim")
            members = self.tools.members(timeout=self._command_timeout())
            values = self.tools.query_node_attribute(self.attribute, timeout=self._command_timeout())
        except CommandError as exc:
            self.release_claim()
            return Verdict(Level.YELLOW, True, f"red capped to yellow: red could not be claimed ({exc})")
        rivals = hh.rival_claims(local, members, claims, now=self.wall(), stale_s=CLAIM_STALE_S)
        if rivals:
            self.release_claim()
            return Verdict(
                Level.YELLOW,
                True,
                f"red capped to yellow: {', '.join(rivals)} turning red at the same time; trying again next monitor",
            )
        verdict = hh.cap_red(local, Level.RED, hh.merge_peers(members, values))
        if verdict.level is not Level.RED:
            self.release_claim()
        return verdict

    def _own_claim_back(self, local: str, stamp: str) -> dict[str, str] | None:
        """Every node's claim once attrd shows ours; None if it does not within CLAIM_WAIT_S.

        Raises CommandError.
        """
        end = self.clock() + min(CLAIM_WAIT_S, self._command_timeout())
        while True:
            claims = self.tools.query_node_attribute(self.claim_attribute, timeout=self._command_timeout())
            if claims.get(local) == stamp:
                return claims
            if self.clock() >= end:
                return None
            time.sleep(CLAIM_POLL_S)

    def release_claim(self) -> None:
        """Withdraw our red claim if we hold one (also one a killed monitor left behind)."""
        if not self.state.get("claim"):
            return
        try:
            self.tools.delete_node_attribute(self.claim_attribute, timeout=self._command_timeout())
        except CommandError as exc:
            self.log.warning(f"red claim {self.claim_attribute} not withdrawn, retrying next monitor: {exc}")
            return
        self.state.pop("claim", None)

    # -- the health attribute --------------------------------------------------------------

    def publish(self, level: Level, *, force: bool, fail_after: int) -> None:
        """Write the attribute if it changed.

        Raises NotInstalled (no attrd_updater), GenericError once the write failed
        ``fail_after`` times in a row (start: 1, the first failure; monitor: attrd_failures).
        """
        value = level.colour
        fresh = self.clock() - float(self.state.get("published_at") or 0) < REASSERT_S
        if not force and self.state.get("published") == value and fresh and not self.state.get("republish"):
            self.state["attrd_failures"] = 0
            return
        try:
            self.tools.set_node_attribute(self.attribute, value, timeout=self._command_timeout())
        except CommandNotFound as exc:
            raise NotInstalled(f"cannot write node health: {exc}") from None
        except CommandError as exc:
            failures = int(self.state.get("attrd_failures") or 0) + 1
            self.state["attrd_failures"] = failures
            what = "attrd is not running on this node" if isinstance(exc, AttrdNotRunning) else str(exc)
            message = f"cannot write {self.attribute}={value}: {what}"
            if failures >= fail_after:
                self._store.save()
                raise GenericError(message + (f" ({failures} times in a row)" if failures > 1 else "")) from None
            self.log.warning(f"{message}; retrying at the next monitor ({failures} of {fail_after})")
            return
        self.state["published"] = value
        self.state["published_at"] = self.clock()
        self.state["attrd_failures"] = 0
        self.state.pop("republish", None)

    def remove(self, deadline: Deadline) -> None:
        """Delete the attribute (stop).  A red or yellow is retried until shortly before
        ``deadline``, then GenericError: left behind, it would keep VMs off this node."""
        published = self.state.get("published")
        strict = published in ("red", "yellow")
        while True:
            try:
                self.tools.delete_node_attribute(self.attribute, timeout=self._command_timeout())
                return
            except CommandNotFound as exc:
                self.log.warning(f"{self.attribute} not removed: {exc}")
                return
            except AttrdNotRunning:
                # attrd is down with the cluster on this node, and the cluster drops a departed
                # node's transient attributes: there is nothing left to remove.
                self.log.warning(f"{self.attribute} not removed: attrd is not running on this node")
                return
            except CommandError as exc:
                if not strict:
                    self.log.warning(f"{self.attribute} not removed: {exc}")
                    return
                if deadline.remaining() < 2.0:
                    raise GenericError(
                        f"cannot remove {self.attribute}={published}; it would keep VMs off this node: {exc}"
                    ) from None
                self.log.warning(f"{self.attribute} not removed yet: {exc}")
                time.sleep(1.0)

    # -- utilization -----------------------------------------------------------------------

    def publish_utilization(
        self,
        cpus: int | None,
        memory_mib: int | None,
        *,
        reserved_cpus: int,
        reserved_memory_mib: int,
        force: bool,
    ) -> None:
        """Node utilization for placement-strategy; a failure is logged and retried later."""
        if cpus is None or memory_mib is None:
            return
        memory = max(0, memory_mib - reserved_memory_mib)
        # host_memory too: VirtualMachine publishes both memory names by default, and a node
        # without a capacity a resource asks for can run no such resource.
        want = {"cpu": max(0, cpus - reserved_cpus), "hv_memory": memory, "host_memory": memory}
        wanted: dict[str, str | None] = {k: str(v) for k, v in want.items()}
        known = None if force else utilization.remembered(self.state.get("utilization"))
        if utilization.unchanged(wanted, known):
            return
        if not force and self.clock() < float(self.state.get("utilization_retry_at") or 0):
            return
        try:
            node = self.node_name()
        except CommandError as exc:
            self.log.warning(f"node utilization not updated (retrying in {UTILIZATION_RETRY_S:g}s): {exc}")
            self.state["utilization_retry_at"] = self.clock() + UTILIZATION_RETRY_S
            return

        def read() -> dict[str, str]:
            found = {}
            for key in wanted:
                value = self.tools.node_utilization(node, key, timeout=self._command_timeout())
                if value is not None:
                    found[key] = value
            return found

        def write(key: str, value: str | None) -> None:
            self.tools.set_node_utilization(node, key, str(value), timeout=self._command_timeout())

        done = utilization.sync(wanted, known, read, write)
        if done.wrote:
            self.log.info(f"node utilization {' '.join(done.wrote)}")
        error = done.read_error or done.write_error
        if error is not None:
            self.log.warning(f"node utilization not updated (retrying in {UTILIZATION_RETRY_S:g}s): {error}")
            self.state["utilization_retry_at"] = self.clock() + UTILIZATION_RETRY_S
        else:
            self.state.pop("utilization_retry_at", None)
        # the failed value is not remembered as written: it is written again after the pause
        self.state["utilization"] = done.known
