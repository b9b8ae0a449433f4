"""ocf:vmha:HypervisorHealth: the host and its virtualization layer as node health.

Run as a clone on every hypervisor.  Each monitor checks libvirtd, memory headroom, storage
pools, the interfaces the VMs use and what the kernel says about the hardware (EDAC, thermal
zones, disk I/O errors, md RAID); ``vmha.probes.host_health`` turns the facts into green,
yellow or red, the worst wins, and the colour goes to the node attribute ``#health-vmha``
through attrd, where Pacemaker's node-health-strategy (e.g. migrate-on-red) acts on it.  The
node's capacity (cpu, hv_memory) goes to its utilization for placement-strategy.

Why the monitor returns 0 whatever the colour: the colour is the agent's report, not its
failure; a monitor that failed on red would make Pacemaker restart the health agent instead
of moving the VMs.  It fails only when it cannot do its job: attrd_updater missing (5), or
the attribute not written attrd_failures times in a row (1).

Why red is sometimes published as yellow: with migrate-on-red, red on every node stops every
VM in the cluster.  Before publishing red the agent reads the other nodes' attribute and
stays yellow unless one of them is online and green (``cap_red``).  Two hosts turning red at
the same moment would each see the other green: a host claims red first and steps back when
another host claims it too (``rival_claims``), so at most one of them turns red.  Checked
again at every monitor while red: a red host stays red while another node is green or yellow
(its VMs are moving there) and steps back to yellow once every other node is red.

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
  claim        our red claim while we hold one (withdrawn once the red is out, or at the
               next monitor or stop when a killed monitor left it behind)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from vmha import __version__
from vmha.agents.common import handler
from vmha.agents.hh_params import PARAMS
from vmha.deadline import Deadline
from vmha.ocf import statefile
from vmha.ocf.cluster import ClusterCommandFailed, ClusterTools
from vmha.ocf.codes import GenericError, NotConfigured, NotInstalled, NotRunning, OcfError
from vmha.ocf.context import OcfContext
from vmha.ocf.dispatch import watchdog_margin
from vmha.ocf.log import Log
from vmha.ocf.runner import CommandError, CommandNotFound, CommandRunner, Completed, find_program
from vmha.ocf.spec import Action, AgentSpec, Handler
from vmha.probes import host_health as hh
from vmha.probes.host_health import Finding, Level, Verdict
from vmha.virt.errors import VirtError

AGENT = "HypervisorHealth"
UTILIZATION_RETRY_S = 60.0
# An unchanged value is written again this often: attrd forgets a node's values when
# Pacemaker restarts there, and a red that silently vanished would let VMs come back.
REASSERT_S = 600.0
# Longest any single cluster command may take; attrd and the CIB answer in milliseconds.
COMMAND_TIMEOUT_S = 5.0
# A filesystem pool's free space is read with statvfs: a hung NFS mount must not hold the
# monitor longer than this.
STATVFS_TIMEOUT_S = 5.0
# The red claim (see vmha.probes.host_health.rival_claims): how long to wait for attrd to
# give our own claim back (it answers in milliseconds), and when another node's claim is
# old enough to be a leftover.
CLAIM_WAIT_S = 2.0
CLAIM_POLL_S = 0.05
CLAIM_STALE_S = 120.0
# What Pacemaker's tools read to name "this node" when run by an agent (lib/common/attrs.c).
NODE_TARGET_ENV = (
    "OCF_RESKEY_CRM_meta_on_node",
    "OCF_RESKEY_CRM_meta_container_attribute_target",
    "OCF_RESKEY_CRM_meta_physical_host",
)
# pacemaker's CRM_EX_NOT_CONNECTED: the tool could not reach its daemon (no cluster here).
RC_NOT_CONNECTED = 102
# CRM_EX_NOSUCH: attrd_updater --query for an attribute no node has.
RC_NO_SUCH = 105


class AttrdNotRunning(ClusterCommandFailed):
    """attrd is not running on this node (rc 102): the cluster is not up here."""


_KV = re.compile(r'(\w+)=(?:"([^"]*)"|(\S*))')


def parse_attrd_query(text: str) -> dict[str, str]:
    """``{node: value}`` from ``attrd_updater --query --all`` text output.

    Pacemaker 2.1 prints one line per node, ``name="#health-vmha" host="ha1" value="red"``
    (older releases the same without some quotes); a node whose value was deleted shows
    ``value=""``.  Lines without a host are not about a node and are skipped.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _KV.finditer(line)}
        host = fields.get("host")
        if host:
            found[host] = fields.get("value", "")
    return found


def _check(done: Completed, not_connected: bool = False) -> Completed:
    if done.ok:
        return done
    tool = done.argv[0].rsplit("/", 1)[-1]
    detail = (done.stderr or done.stdout).strip().splitlines()
    message = f"{tool} failed (rc {done.rc}): {detail[-1] if detail else 'no output'}"
    if not_connected and done.rc == RC_NOT_CONNECTED:
        raise AttrdNotRunning(message)
    raise ClusterCommandFailed(message)


class NodeTools:
    """The node-level cluster commands this agent needs, through the one runner.

    Belongs in ``vmha.ocf.cluster.ClusterTools`` (set_node_utilization, delete_node_attribute,
    query_node_attribute); kept here until the lead moves it.

    Raises CommandNotFound, CommandTimedOut (runner), ClusterCommandFailed, AttrdNotRunning.
    """

    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner
        self.cluster = ClusterTools(runner)

    def set_attribute(self, name: str, value: str, *, timeout: float, private: bool = False) -> None:
        """``private``: kept by attrd only, never written to the CIB (a CIB write would make
        the scheduler run again for an attribute no rule reads)."""
        argv = ["attrd_updater", "--name", name, "--update", value]
        done = self._runner.run([*argv, "--private"] if private else argv, timeout=timeout)
        _check(done, not_connected=True)

    def delete_attribute(self, name: str, *, timeout: float) -> None:
        done = self._runner.run(["attrd_updater", "--name", name, "--delete"], timeout=timeout)
        _check(done, not_connected=True)

    def query_attribute(self, name: str, *, timeout: float) -> dict[str, str]:
        """Every node's value.  The variables Pacemaker gives an agent to name its own node
        are withheld: attrd_updater 2.1 reads them even with --all and then answers for that
        one node only, so every peer would look unknown."""
        done = self._runner.run(
            ["attrd_updater", "--query", "--all", "--name", name], timeout=timeout, env_unset=NODE_TARGET_ENV
        )
        if done.rc == RC_NO_SUCH:
            return {}  # no node has the attribute
        return parse_attrd_query(_check(done, not_connected=True).stdout)

    def members(self, *, timeout: float) -> list[tuple[str, bool]]:
        """(name, online) of every node ``crm_node --list`` knows; online means "member"."""
        return [(n.name, n.state == "member") for n in self.cluster.nodes(timeout=timeout)]

    def node_utilization(self, node: str, name: str, *, timeout: float) -> str | None:
        """The node's utilization attribute as the CIB holds it, None when it has none."""
        argv = ["crm_attribute", "--node", node, "--utilization", "--name", name, "--query", "--quiet"]
        done = self._runner.run(argv, timeout=timeout)
        if done.rc == RC_NO_SUCH:
            return None
        return _check(done).stdout.strip() or None

    def set_node_utilization(self, node: str, name: str, value: str, *, timeout: float) -> None:
        argv = ["crm_attribute", "--node", node, "--utilization", "--name", name, "--update", value]
        _check(self._runner.run(argv, timeout=timeout))


class Assessment(NamedTuple):
    findings: list[Finding]
    cpus: int | None
    memory_mib: int | None


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
        self.attribute = self.p.text("health_attribute")
        self.runner = runner or CommandRunner(ctx.env)
        self.tools = NodeTools(self.runner)
        self.clock = clock
        self.wall = wall
        self.claim_attribute = "vmha-red-claim" + self.attribute[len("#health") :]
        self.deadline = ctx.deadline().earlier(watchdog_margin(ctx.timeout_s) + 0.5)
        self._store = statefile.Store(statefile.state_path(ctx.rsc_tmp, AGENT, ctx.instance), log.warning)
        self._node: str | None = None

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

    # -- the checks ------------------------------------------------------------------------

    def _wants_libvirt(self) -> bool:
        p = self.p
        return (
            p.flag("check_hypervisor")
            or p.flag("check_memory")
            or p.flag("check_storage")
            or (p.flag("check_interfaces") and not p.text("interfaces"))
            or p.flag("set_utilization")
        )

    def assess(self) -> Assessment:
        """Every enabled check's findings, and the host's size when libvirt told it."""
        from vmha.agents import host_facts

        p = self.p
        findings: list[Finding] = []
        facts: dict[str, Any] = {}
        error: str | None = None
        if self._wants_libvirt():
            try:
                facts = self._libvirt_facts()
            except VirtError as exc:
                error = exc.message
            except ImportError as exc:  # python3-libvirt not installed: libvirt cannot be asked
                error = f"the libvirt Python binding cannot be loaded ({exc})"
            if p.flag("check_hypervisor"):
                failure = Level.RED if p.text("hypervisor_failure") == "red" else Level.YELLOW
                findings.append(hh.judge_hypervisor(self.uri, error, failure))
            elif error:
                self.log.debug(f"libvirt not answering ({error}); its checks are skipped")
        # Checks that need libvirt's facts are skipped when it did not answer: the
        # hypervisor check already reports that, once.
        if p.flag("check_memory") and error is None:
            domains = [hh.DomainMemory(d.name, d.max_kib, d.current_kib) for d in facts["domains"]]
            findings.append(
                hh.judge_memory(
                    host_facts.mem_available_kib(self.root),
                    domains,
                    headroom_mib=p.integer("memory_headroom_mib"),
                    red_mib=p.integer("memory_red_mib"),
                )
            )
        if p.flag("check_storage") and error is None:
            pools = [self._pool_space(x, host_facts) for x in facts["pools"]]
            findings += hh.judge_pools(
                pools,
                p.text("storage_pools").split(),
                yellow_percent=p.integer("pool_free_yellow_percent"),
                red_percent=p.integer("pool_free_red_percent"),
            )
        if p.flag("check_interfaces"):
            names = p.text("interfaces").split() or facts.get("interfaces")
            if names is not None:
                findings += hh.judge_interfaces({n: host_facts.link_state(n, self.root) for n in names})
        findings += self._hardware(host_facts)
        info = facts.get("info")
        return Assessment(findings, info.cpus if info else None, info.memory_mib if info else None)

    def _pool_space(self, pool: Any, host_facts: Any) -> hh.PoolSpace:
        """libvirt's figures, except for a filesystem pool, whose free space is read from its
        filesystem now: libvirt's are from its last refresh, and a refresh rescans every
        volume (slow, and it holds the pool locked while a VM may be starting)."""
        from vmha.virt.host import FILESYSTEM_POOLS

        space = hh.PoolSpace(pool.name, pool.active, pool.capacity, pool.available)
        if not (pool.active and pool.kind in FILESYSTEM_POOLS and pool.target):
            return space
        budget = min(STATVFS_TIMEOUT_S, self._libvirt_deadline().remaining())
        try:
            measured = host_facts.filesystem_space(pool.target, self.root, timeout=budget)
        except TimeoutError:
            return space._replace(problem=f"its filesystem {pool.target} does not answer within {budget:.1f}s")
        if measured is None:
            return space  # target not visible here (another mount namespace): libvirt's figures
        return space._replace(capacity=measured[0], available=measured[1])

    def _libvirt_facts(self) -> dict[str, Any]:
        """Raises VirtError (HypervisorTimeout when libvirtd does not answer in time)."""
        from vmha.virt import host
        from vmha.virt.connection import Connection

        p = self.p
        derive = p.flag("check_interfaces") and not p.text("interfaces")
        facts: dict[str, Any] = {}
        with Connection.open(self.uri, self._libvirt_deadline(), readonly=True) as conn:
            facts["info"] = host.host_info(conn)
            if p.flag("check_memory") or derive:
                facts["domains"] = host.running_domains(conn, with_xml=derive)
            if p.flag("check_storage"):
                facts["pools"] = host.pools(conn)
            if derive:
                names: list[str] = []
                bridges: dict[str, str | None] = {}
                for dom in facts["domains"]:
                    for src in host.interface_sources(dom.xml):
                        if src.kind == "network":
                            if src.name not in bridges:
                                bridges[src.name] = host.network_bridge(conn, src.name)
                            name = bridges[src.name]
                        else:
                            name = src.name
                        if name and name not in names:
                            names.append(name)
                facts["interfaces"] = names
        return facts

    def _hardware(self, host_facts: Any) -> list[Finding]:
        p = self.p
        findings: list[Finding] = []
        previous = self.state.get("counters")
        previous = previous if isinstance(previous, dict) else {}
        counters: dict[str, int] = {}
        if p.flag("check_edac"):
            edac = host_facts.edac_counters(self.root)
            old = {k[5:]: v for k, v in previous.items() if k.startswith("edac/") and isinstance(v, int)}
            findings += hh.judge_edac(hh.increases(old, edac), ce_threshold=p.integer("edac_ce_threshold"))
            counters.update({f"edac/{k}": v for k, v in edac.items()})
        if p.flag("check_disk_errors"):
            disks = host_facts.disk_io_errors(self.root)
            old = {k[5:]: v for k, v in previous.items() if k.startswith("disk/") and isinstance(v, int)}
            findings += hh.judge_disk_errors(hh.increases(old, disks))
            counters.update({f"disk/{k}": v for k, v in disks.items()})
        if p.flag("check_thermal"):
            findings += hh.judge_thermal(host_facts.thermal_zones(self.root))
        if p.flag("check_md_raid"):
            findings += hh.judge_md(host_facts.md_arrays(self.root))
        self.state["counters"] = counters
        holds = {}
        for key, rec in (self.state.get("holds") or {}).items():
            try:
                holds[key] = hh.Hold(Level(rec["level"]), str(rec["reason"]), float(rec["until"]))
            except (KeyError, TypeError, ValueError):
                continue  # a record from another version: forget it
        findings, kept = hh.apply_holds(findings, holds, now=self.clock(), hold_s=float(p.integer("counter_hold")))
        self.state["holds"] = {
            k: {"level": int(h.level), "reason": h.reason, "until": h.until} for k, h in kept.items()
        }
        return findings

    # -- the cluster-wide rule -------------------------------------------------------------

    def node_name(self) -> str:
        """This node's name: Pacemaker passes it to every action; crm_node asks otherwise.

        Raises CommandError.
        """
        if self._node is None:
            self._node = self.ctx.on_node or self.tools.cluster.local_node(timeout=self._command_timeout())
        return self._node

    def read_peers(self) -> tuple[list[hh.PeerView] | None, str]:
        try:
            members = self.tools.members(timeout=self._command_timeout())
            values = self.tools.query_attribute(self.attribute, timeout=self._command_timeout())
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
        docstring of vmha.probes.host_health)."""
        stamp = f"{self.wall():.3f}"
        try:
            self.tools.set_attribute(self.claim_attribute, stamp, private=True, timeout=self._command_timeout())
            self.state["claim"] = stamp
            claims = self._own_claim_back(local, stamp)
            if claims is None:
                self.release_claim()
                return Verdict(Level.YELLOW, True, "red capped to yellow: attrd did not confirm the red claim")
            members = self.tools.members(timeout=self._command_timeout())
            values = self.tools.query_attribute(self.attribute, timeout=self._command_timeout())
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
            claims = self.tools.query_attribute(self.claim_attribute, timeout=self._command_timeout())
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
            self.tools.delete_attribute(self.claim_attribute, timeout=self._command_timeout())
        except CommandError as exc:
            self.log.warning(f"red claim {self.claim_attribute} not withdrawn, retrying next monitor: {exc}")
            return
        self.state.pop("claim", None)

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

    # -- publishing ------------------------------------------------------------------------

    def publish(self, level: Level, *, force: bool = False) -> None:
        """Write the attribute if it changed.

        Raises NotInstalled (no attrd_updater), GenericError (start: any failure; monitor:
        attrd_failures failures in a row).
        """
        value = level.colour
        fresh = self.clock() - float(self.state.get("published_at") or 0) < REASSERT_S
        if not force and self.state.get("published") == value and fresh and not self.state.get("republish"):
            self.state["attrd_failures"] = 0
            return
        try:
            self.tools.set_attribute(self.attribute, value, timeout=self._command_timeout())
        except CommandNotFound as exc:
            raise NotInstalled(f"cannot write node health: {exc}") from None
        except CommandError as exc:
            failures = int(self.state.get("attrd_failures") or 0) + 1
            self.state["attrd_failures"] = failures
            limit = self.p.integer("attrd_failures")
            what = "attrd is not running on this node" if isinstance(exc, AttrdNotRunning) else str(exc)
            message = f"cannot write {self.attribute}={value}: {what}"
            if self.ctx.action == "start" or failures >= limit:
                self._save_state()
                raise GenericError(message + (f" ({failures} times in a row)" if failures > 1 else "")) from None
            self.log.warning(f"{message}; retrying at the next monitor ({failures} of {limit})")
            return
        self.state["published"] = value
        self.state["published_at"] = self.clock()
        self.state["attrd_failures"] = 0
        self.state.pop("republish", None)

    def publish_utilization(self, cpus: int | None, memory_mib: int | None, *, force: bool = False) -> None:
        """Node utilization for placement-strategy; a failure is logged and retried later."""
        if not self.p.flag("set_utilization") or cpus is None or memory_mib is None:
            return
        memory = max(0, memory_mib - self.p.integer("reserved_memory_mib"))
        # host_memory too: VirtualMachine publishes both memory names by default, and a node
        # without a capacity a resource asks for can run no such resource.
        want = {"cpu": max(0, cpus - self.p.integer("reserved_cpus")), "hv_memory": memory, "host_memory": memory}
        known = self.state.get("utilization")
        known = dict(known) if isinstance(known, dict) and not force else {}
        if all(known.get(k) == v for k, v in want.items()):
            return
        if not force and self.clock() < float(self.state.get("utilization_retry_at") or 0):
            return
        wrote = []
        try:
            node = self.node_name()
            for key, value in want.items():
                if key not in known:
                    # Nothing remembered (first start since boot): read before writing, since
                    # every CIB write aborts the transition in progress (this start's, too).
                    current = self.tools.node_utilization(node, key, timeout=self._command_timeout())
                    if current == str(value):
                        known[key] = value
                if known.get(key) != value:
                    self.tools.set_node_utilization(node, key, str(value), timeout=self._command_timeout())
                    known[key] = value
                    wrote.append(f"{key}={value}")
        except CommandError as exc:
            self.log.warning(f"node utilization not updated (retrying in {UTILIZATION_RETRY_S:g}s): {exc}")
            self.state["utilization_retry_at"] = self.clock() + UTILIZATION_RETRY_S
        else:
            self.state.pop("utilization_retry_at", None)
            if wrote:
                self.log.info(f"node utilization {' '.join(wrote)}")
        self.state["utilization"] = known

    def _evaluate_and_publish(self, *, force: bool) -> Verdict:
        self.release_claim()  # one left by a monitor killed half way through
        found = self.assess()
        verdict = self.decide(found.findings)
        self.report(found.findings, verdict)
        try:
            self.publish(verdict.level, force=force)
        finally:
            self.release_claim()  # after the red is out: a rival sees the claim or the red
            self._save_state()
        self.publish_utilization(found.cpus, found.memory_mib, force=force)
        return verdict

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
            value = self.tools.cluster.top_level_meta(
                self.ctx.resource_id, "allow-unhealthy-nodes", timeout=self._command_timeout()
            )
        except CommandError as exc:
            self.log.debug(f"allow-unhealthy-nodes not read: {exc}")
            return
        if (value or "").lower() not in ("true", "1", "yes", "on", "y"):
            # The scheduler reads it on the clone only; on the primitive it does nothing.
            self.log.warning("set meta allow-unhealthy-nodes=true on this clone: a red node stops its health agent")

    def stop(self) -> None:
        self.release_claim()
        published = self.state.get("published")
        strict = published in ("red", "yellow")
        while True:
            try:
                self.tools.delete_attribute(self.attribute, timeout=self._command_timeout())
                break
            except CommandNotFound as exc:
                self.log.warning(f"{self.attribute} not removed: {exc}")
                break
            except AttrdNotRunning:
                # attrd is down with the cluster on this node, and the cluster drops a departed
                # node's transient attributes: there is nothing left to remove.
                self.log.warning(f"{self.attribute} not removed: attrd is not running on this node")
                break
            except CommandError as exc:
                if not strict:
                    self.log.warning(f"{self.attribute} not removed: {exc}")
                    break
                if self.deadline.remaining() < 2.0:
                    raise GenericError(
                        f"cannot remove {self.attribute}={published}; it would keep VMs off this node: {exc}"
                    ) from None
                self.log.warning(f"{self.attribute} not removed yet: {exc}")
                time.sleep(1.0)
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


__all__ = ["SPEC", "main", "HypervisorHealth", "NodeTools", "parse_attrd_query", "OcfError"]
