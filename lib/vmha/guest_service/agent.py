"""ocf:vmha:GuestService: one service inside a libvirt guest, managed through the QEMU guest
agent (no cluster software in the guest), plus optional client-path checks from the host.

Group or colocate it with the VirtualMachine resource of its domain and order it after it::

    pcs resource group add web vm-web nginx-web

Layers, lowest first; the monitor reports the lowest one that fails, named first in the
exit reason (pacemaker-execd keeps 128 bytes of it)::

    hypervisor   "hypervisor unreachable: ..."      libvirtd does not answer
    VM           "VM down: ..."                     the domain does not run here (7)
    guest agent  "guest agent unreachable: ..."     not connected / not answering
    service      "service down: ..." (7), "service failed: ..." (1)
    client path  "port closed: ...", "HTTP 500: ..."

A dead service is restarted inside the guest by Pacemaker's normal recovery (stop, start of
this resource); the VM is not touched.  Probes are lenient: a probe that cannot see the
service (no domain here, no agent, no hypervisor) answers "not running", because a failed
probe leads to a stop, and a stop that cannot reach the service fails and fences the host.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, NoReturn

from vmha import __version__
from vmha.agent_common import handler
from vmha.guest_service.params import PARAMS
from vmha.ocf.codes import GenericError, NotConfigured, NotInstalled, NotRunning
from vmha.ocf.context import OcfContext
from vmha.ocf.dispatch import watchdog_margin
from vmha.ocf.log import Log
from vmha.ocf.spec import Action, AgentSpec, Handler
from vmha.verdicts.guest_command import RefusedCommand
from vmha.verdicts.service_status import (
    Commands,
    ServiceState,
    StatusVerdict,
    commands_for,
    judge_status,
)
from vmha.virt.errors import (
    AgentNotConnected,
    AgentUnresponsive,
    DomainNotFound,
    HypervisorUnreachable,
    OperationInvalid,
    OperationUnsupported,
    VirtError,
)

# libvirt's answer to an agent command when the domain stopped (or vanished) since we looked.
GONE = (OperationInvalid, DomainNotFound)

if TYPE_CHECKING:
    from vmha.deadline import Deadline
    from vmha.virt.connection import Connection
    from vmha.virt.domain import Domain
    from vmha.virt.guest_agent import ExecResult, GuestAgent

AGENT = "GuestService"
POLL_S = 1.0
FINISH_S = 0.3
# Time one more look into the guest needs (a guest agent call needs 1.5 s at least): a retry
# loop stops before it, so its reason is the last real answer, not "no time left".
ATTEMPT_S = 2.0
# How long a stop keeps trying a guest it cannot reach (agent hung, QEMU frozen) before it
# leaves the service to its VM's resource: the VM's stop, ordered after this one, is what
# recovers a frozen guest, and waiting out the whole stop timeout (60 s) only delays it
# (measured in the lab's soak: a frozen guest's VM restarted 101 s after the freeze).
UNREACHABLE_STOP_S = 10.0
# How long a start waits for a VM that is not running here (see start)
VM_DOWN_START_S = 5.0


class VmDown(Exception):
    """The domain is not running on this host (or does not exist here)."""


class ManagerMissing(GenericError):
    """None of the service manager's programs exists in the guest (not installed there)."""


class GuestService:
    """One invocation of the agent: the context and the actions."""

    def __init__(self, ctx: OcfContext, log: Log) -> None:
        self.ctx = ctx
        self.log = log
        self.p = ctx.params
        self.uri = self.p.text("hypervisor")
        self.domain = self.p.text("domain")
        self.manager = self.p.text("manager")
        self.agent_timeout = float(self.p.integer("agent_timeout"))
        # Blocking steps must give up by this: the dispatcher's watchdog fires FINISH_S later,
        # and its generic reason would hide which layer did not answer.
        self.deadline = ctx.deadline().earlier(watchdog_margin(ctx.timeout_s) + FINISH_S)
        self._start_ran = False

    @property
    def label(self) -> str:
        """The service as an operator names it in a reason."""
        service = self.p.text("service")
        if service:
            return service
        words = self.p.text("status_command").split()
        return words[0].rsplit("/", 1)[-1] if words else "service"

    # -- validation ------------------------------------------------------------------------

    def commands(self) -> Commands:
        """The argument lists for this manager. Raises NotConfigured."""
        p = self.p
        if self.manager == "commands":
            missing = [n for n in ("start_command", "stop_command", "status_command") if not p.text(n)]
            if missing:
                raise NotConfigured(f"manager=commands needs {', '.join(missing)}")
        else:
            if not p.text("service"):
                raise NotConfigured(f"parameter service is required with manager={self.manager}")
            given = [n for n in ("start_command", "stop_command", "status_command") if p.text(n)]
            if given:
                raise NotConfigured(f"{', '.join(given)} only apply to manager=commands (manager is {self.manager})")
        try:
            return commands_for(
                self.manager,
                p.text("service"),
                p.text("start_command"),
                p.text("stop_command"),
                p.text("status_command"),
            )
        except RefusedCommand as exc:
            raise NotConfigured(str(exc)) from None

    def validate(self) -> None:
        """Parameters, and this host's files they name: the domain may run on another host.
        Raises NotConfigured, NotInstalled."""
        self.commands()
        p = self.p
        if p.text("http_check") == "":
            unused = [n for n in ("http_status", "http_body", "http_ca_file", "http_insecure") if p.is_set(n)]
            if unused:
                self.log.warning(f"{', '.join(unused)} set but http_check is empty: no HTTP check runs")
        elif p.text("http_ca_file") and not os.path.isfile(p.text("http_ca_file")):
            raise NotInstalled(f"http_ca_file {p.text('http_ca_file')} is not a file on this host")
        db = p.text("db_check")
        if not db:
            if p.text("db_password_file") or p.flag("db_require_primary"):
                self.log.warning("db_password_file or db_require_primary set but db_check is empty")
            return
        from vmha.verdicts.db_checks import parse_db

        target = parse_db(db)  # the parameter's own check passed: cannot raise
        if p.flag("db_require_primary") and target.kind == "mysql" and not target.user:
            raise NotConfigured("db_require_primary needs a login: name the user in db_check (mysql://user@host)")
        if p.text("db_password_file"):
            self.db_password()

    def db_password(self) -> str | None:
        """db_password_file's password, None without one. Raises NotConfigured, NotInstalled."""
        path = self.p.text("db_password_file")
        if not path:
            return None
        from vmha.guest_service.db_client import read_password_file

        if not os.path.exists(path):
            raise NotInstalled(f"db_password_file {path} does not exist on this host")
        try:
            return read_password_file(path)
        except ValueError as exc:
            raise NotConfigured(str(exc)) from None

    def validate_all(self) -> None:
        self.validate()

    def reload_agent(self) -> None:
        # Every reloadable parameter is read afresh by each monitor.
        self.validate()

    # -- libvirt and the guest agent --------------------------------------------------------

    def connect(self, deadline: Deadline) -> Connection:
        from vmha.virt.connection import Connection

        return Connection.open(self.uri, deadline)

    def running_domain(self, conn: Connection) -> Domain:
        """The domain, running. Raises VmDown."""
        from vmha.virt.guest_agent import looks_like_uuid

        if looks_like_uuid(self.domain):
            dom = conn.find(uuid=self.domain)
        else:
            dom = conn.find(name=self.domain)
        if dom is None:
            raise VmDown(f"VM down: domain {self.domain} is not defined or not running on this host")
        status = dom.status()
        if not status.active:
            raise VmDown(f"VM down: domain {self.domain} is {status.describe()} on this host")
        return dom

    def guest_agent(self, dom: Domain) -> GuestAgent:
        from vmha.virt.guest_agent import GuestAgent

        return GuestAgent(dom, call_timeout=self.agent_timeout)

    def run(self, agent: GuestAgent, candidates: tuple[tuple[str, ...], ...], deadline: Deadline) -> ExecResult:
        """The first candidate whose program exists in the guest, run until ``deadline``.

        Raises GenericError when none exists; agent errors as GuestAgent.run.
        """
        from vmha.virt.guest_agent import GuestProgramMissing

        tried = []
        for argv in candidates:
            try:
                return agent.run(argv, deadline)
            except GuestProgramMissing:
                tried.append(argv[0])
        raise ManagerMissing(
            f"service manager missing: {' or '.join(tried)} not found in guest {self.domain} (manager={self.manager})"
        )

    def status(self, agent: GuestAgent, deadline: Deadline) -> StatusVerdict:
        """The service's state in the guest. Raises ManagerMissing, GenericError, agent errors."""
        from vmha.virt.guest_agent import GuestExecTimedOut

        try:
            result = self.run(agent, self.commands().status, deadline)
        except GuestExecTimedOut as exc:
            raise GenericError(f"service status unknown: {exc.message}") from None
        verdict = judge_status(self.manager, result.exit_code, result.stdout)
        if verdict.state is ServiceState.UNKNOWN and result.last_line():
            return StatusVerdict(verdict.state, f"{verdict.detail}: {result.last_line()[:80]}")
        return verdict

    def agent_problem(self, exc: VirtError) -> str:
        """The exit reason for an agent that cannot be used, naming the VM layer."""
        if isinstance(exc, AgentNotConnected):
            return f"guest agent unreachable: VM {self.domain} has no agent connected (guest down or booting?)"
        if isinstance(exc, AgentUnresponsive):
            return f"guest agent unreachable: VM {self.domain} agent not answering (guest hung?): {exc.message}"
        if isinstance(exc, OperationUnsupported):
            return f"guest agent unusable: {exc.message}"
        return f"guest agent error: VM {self.domain}: {exc.message}"

    # -- client path -----------------------------------------------------------------------

    def client_problem(self) -> str:
        """The reason the first failing client-path check gives, or ''."""
        from vmha.verdicts import client_checks

        p = self.p
        tcp, http, db = p.text("tcp_check"), p.text("http_check"), p.text("db_check")
        if not tcp and not http and not db:
            return ""
        from vmha.guest_service import client_path

        if tcp:
            target = client_checks.parse_tcp(tcp)
            timeout = min(float(p.integer("tcp_timeout")), self.deadline.remaining())
            outcome, detail = client_path.tcp_connect(target, timeout)
            result = client_checks.judge_tcp(target, outcome, timeout, detail)
            if not result.ok:
                return result.reason
        if http:
            htarget = client_checks.parse_http(http)
            timeout = min(float(p.integer("http_timeout")), self.deadline.remaining())
            answer = client_path.http_get(
                htarget,
                timeout,
                body=p.text("http_body"),
                ca_file=p.text("http_ca_file"),
                insecure=p.flag("http_insecure"),
            )
            statuses = client_checks.parse_statuses(p.text("http_status"))
            ceiling = p.integer("http_max_latency_ms")
            result = client_checks.judge_http(
                htarget, answer, statuses, timeout, body=p.text("http_body"), max_latency_ms=ceiling
            )
            if not result.ok:
                return result.reason
        if db:
            return self.db_problem(db)
        return ""

    def db_problem(self, url: str) -> str:
        from vmha.guest_service.db_client import db_check
        from vmha.verdicts.db_checks import judge_db, parse_db

        target = parse_db(url)
        try:
            password = self.db_password()
        except (NotConfigured, NotInstalled) as exc:
            return f"db check: {exc.reason}"
        timeout = min(float(self.p.integer("db_timeout")), self.deadline.remaining())
        outcome = db_check(target, password, timeout)
        result = judge_db(target, outcome, require_primary=self.p.flag("db_require_primary"), timeout_s=timeout)
        return "" if result.ok else result.reason

    # -- monitor ---------------------------------------------------------------------------

    def observe(self) -> StatusVerdict:
        """The service's state in the guest, one try. Raises VmDown, VirtError, GenericError."""
        reserve = self._client_reserve()
        with self.connect(self.deadline.earlier(reserve)) as conn:
            dom = self.running_domain(conn)
            agent = self.guest_agent(dom)
            return self.status(agent, self.deadline.earlier(reserve).within(self.agent_timeout))

    def _client_reserve(self) -> float:
        """Time kept for the client-path checks after the guest has been asked."""
        reserve = 0.0
        if self.p.text("tcp_check"):
            reserve += float(self.p.integer("tcp_timeout"))
        if self.p.text("http_check"):
            reserve += float(self.p.integer("http_timeout"))
        if self.p.text("db_check"):
            reserve += float(self.p.integer("db_timeout"))
        return min(reserve, self.ctx.timeout_s * 0.4)

    def monitor(self) -> None:
        try:
            verdict = self.observe()
        except VmDown as exc:
            raise NotRunning(str(exc)) from None
        except GONE as exc:
            raise NotRunning(f"VM down: domain {self.domain}: {exc.message}") from None
        except HypervisorUnreachable as exc:
            self._unknown(f"hypervisor unreachable: {self.uri}: {exc.message}")
        except VirtError as exc:
            self._unknown(self.agent_problem(exc))
        except GenericError as exc:  # the manager is missing, or its status program hangs
            self._unknown(exc.reason)
        if verdict.state is ServiceState.STOPPED:
            raise NotRunning(f"service down: {self.label} in VM {self.domain} is {verdict.detail}")
        if verdict.state is not ServiceState.RUNNING:
            raise GenericError(f"service failed: {self.label} in VM {self.domain} is {verdict.detail}")
        problem = self.client_problem()
        if problem:
            raise GenericError(problem)

    def _unknown(self, reason: str) -> NoReturn:
        """The service cannot be seen: a failure for a recurring monitor, "not running" for a probe.

        A probe is lenient because "failed" would make Pacemaker stop the resource here, and a
        stop that cannot reach the service either fails (and fences the host) or cannot help.
        """
        if self.ctx.is_probe:
            self.log.warning(f"{reason}; the probe answers not running")
            raise NotRunning(reason)
        raise GenericError(reason)

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        self.validate()
        commands = self.commands()
        last = "not tried"
        self._start_ran = False
        vm_down_since: float | None = None
        while True:
            try:
                done, last = self._start_step(commands)
                vm_down_since = None
                if done:
                    self.log.info(f"{self.label} running in VM {self.domain}")
                    return
            except VmDown as exc:
                # Ordered after its VM, a start that finds the VM down finds a VM that died
                # (the service's monitor noticed first): waiting out the timeout would hold
                # back the VM's own recovery for as long (measured in the soak: 55 s).  A
                # few seconds cover a VM resource still being started without an order.
                last = str(exc)
                vm_down_since = vm_down_since or time.monotonic()
                if time.monotonic() - vm_down_since >= VM_DOWN_START_S:
                    raise GenericError(f"start: {last}") from None
            except GONE as exc:
                last = f"VM down: domain {self.domain}: {exc.message}"
            except (AgentNotConnected, AgentUnresponsive) as exc:
                last = self.agent_problem(exc)  # the guest is still booting
            except HypervisorUnreachable as exc:
                last = f"hypervisor unreachable: {exc.message}"
            except VirtError as exc:
                raise GenericError(f"start: {self.agent_problem(exc)}") from None
            if self.deadline.remaining() < POLL_S + ATTEMPT_S:
                raise GenericError(f"start: {last} (until the timeout)")
            self.log.info(f"start: waiting: {last}")
            time.sleep(POLL_S)

    def _start_step(self, commands: Commands) -> tuple[bool, str]:
        """One attempt: (done, why not). The start command runs once per start action."""
        from vmha.virt.domain import DomainState, PausedReason
        from vmha.virt.guest_agent import GuestExecTimedOut

        with self.connect(self.deadline) as conn:
            dom = self.running_domain(conn)
            paused = dom.status()
            if paused.state is DomainState.PAUSED and paused.reason == PausedReason.IOERROR:
                # nothing in the guest runs until its storage comes back, and this start in
                # flight holds back the cluster's recovery of the VM (measured in the soak: a
                # start waiting out its 60 s delayed the VM's failover by as much)
                raise GenericError(f"start: VM {self.domain} is paused by a disk I/O error on this host")
            agent = self.guest_agent(dom)
            verdict = self.status(agent, self.deadline.within(self.agent_timeout))
            if verdict.state is not ServiceState.RUNNING and not self._start_ran:
                self.log.info(f"starting {self.label} in VM {self.domain} ({verdict.detail})")
                try:
                    result = self.run(agent, commands.start, self.deadline)
                except GuestExecTimedOut as exc:
                    raise GenericError(f"start: {exc.message}") from None
                if result.exit_code != 0:
                    tail = f": {result.last_line()[:80]}" if result.last_line() else ""
                    raise GenericError(f"start: start command failed in VM {self.domain} ({result.describe()}){tail}")
                self._start_ran = True
                verdict = self.status(agent, self.deadline.within(self.agent_timeout))
        if self._start_ran and verdict.state is ServiceState.DEAD:
            # It started and died: waiting for the timeout would not change that.
            raise GenericError(f"start: service {self.label} in VM {self.domain} is {verdict.detail} after starting")
        if verdict.state is not ServiceState.RUNNING:
            return False, f"service {self.label} in VM {self.domain} is {verdict.detail}"
        problem = self.client_problem()
        if problem:
            return False, problem
        return True, ""

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        from vmha.virt.guest_agent import GuestExecTimedOut

        try:
            commands = self.commands()
        except NotConfigured as exc:
            # start refuses such parameters, so they cannot have started anything; failing
            # the stop would fence the host for a typo.
            self.log.error(f"{exc.reason}: nothing to stop with these parameters")
            return
        ran: ExecResult | None = None
        last = "not tried"
        unreachable = False  # the last look could not reach the guest at all
        unreachable_since: float | None = None
        while True:
            unreachable = agent_silent = False
            attempt_began = time.monotonic()
            try:
                with self.connect(self.deadline) as conn:
                    dom = self.running_domain(conn)
                    agent = self.guest_agent(dom)
                    verdict = self.status(agent, self.deadline.within(self.agent_timeout))
                    if verdict.stopped:
                        self.log.info(f"{self.label} in VM {self.domain} is {verdict.detail}")
                        return
                    if ran is None:
                        self.log.info(f"stopping {self.label} in VM {self.domain} ({verdict.detail})")
                        ran = self.run(agent, commands.stop, self.deadline)
                        if ran.exit_code != 0:
                            self.log.warning(f"stop command: {ran.describe()}: {ran.last_line()[:120]}")
                        continue  # look again at once
                    last = f"{self.label} still {verdict.detail} in VM {self.domain}"
                    if ran.exit_code != 0:
                        last += f" (stop command {ran.describe()}: {ran.last_line()[:60]})"
            except VmDown as exc:
                self.log.info(f"{exc}: the service cannot run without its VM")
                return
            except GONE as exc:
                self.log.info(f"domain {self.domain} went away ({exc.message}): the service cannot run without its VM")
                return
            except AgentNotConnected as exc:
                self.log.warning(f"{self.agent_problem(exc)}: the service cannot run without its guest")
                return
            except OperationUnsupported as exc:
                # guest-exec disabled in the guest, or a hypervisor without guest agents: this
                # resource could never have started the service, and failing the stop would
                # only fence the host.
                self.log.warning(f"{self.agent_problem(exc)}: nothing this resource can have started")
                return
            except ManagerMissing as exc:
                self.log.info(f"{exc.reason}: the service is not installed there, so it is not running")
                return
            except GuestExecTimedOut as exc:
                last, unreachable, agent_silent = exc.message, True, True
            except AgentUnresponsive as exc:
                last, unreachable, agent_silent = self.agent_problem(exc), True, True
            except HypervisorUnreachable as exc:
                last, unreachable = f"hypervisor unreachable: {exc.message}", True
            except VirtError as exc:
                raise GenericError(f"stop: {self.agent_problem(exc)}") from None
            # A hung agent or hypervisor may come back; the service may take its time to stop.
            # the guest agent itself silent (not libvirtd, which may be restarting)
            if not agent_silent:
                unreachable_since = None
            elif unreachable_since is None:
                unreachable_since = attempt_began
            gave_up = unreachable_since is not None and time.monotonic() - unreachable_since >= UNREACHABLE_STOP_S
            if self.deadline.remaining() < POLL_S + ATTEMPT_S or gave_up:
                if unreachable:
                    # The service lives inside its VM and cannot run anywhere else, so there is
                    # no second copy to fear: failing here would fence the whole host (every
                    # VM on it) for one guest's hung agent. The VM's own resource decides.
                    self.log.warning(f"stop: cannot confirm, {last}; leaving the service to its VM's resource")
                    return
                raise GenericError(f"stop: {last}")
            self.log.info(f"stop: waiting: {last}")
            time.sleep(POLL_S)


def _handler(method: str) -> Handler:
    return handler(GuestService, method)


LONGDESC = (
    "Manages one service inside a libvirt guest through the QEMU guest agent: no cluster "
    "software in the guest. The service is started, stopped and checked with its manager "
    "(systemd, sysv init script, OpenRC, or explicit commands), each run in the guest with "
    "guest-exec as an argument list, never through a shell. Optional client-path checks from "
    "the host (a TCP connect, an HTTP GET) make the monitor fail when clients cannot reach "
    "the service. The exit reason names the layer that failed: hypervisor, VM, guest agent, "
    "service, port or HTTP. Group or colocate it with the VirtualMachine resource of its "
    "domain and order it after it; a failed service is restarted in the guest without "
    "touching the VM. The guest needs qemu-guest-agent with guest-exec and guest-exec-status "
    "allowed (RHEL disables guest-exec by default)."
)

SPEC = AgentSpec(
    name=AGENT,
    version=__version__,
    shortdesc="Manages a service inside a libvirt guest",
    longdesc=LONGDESC,
    params=PARAMS,
    actions=(
        Action("start", 60, _handler("start")),
        Action("stop", 60, _handler("stop")),
        Action("monitor", 30, _handler("monitor"), interval_s=20, depth=0),
        Action("status", 30, _handler("monitor"), advertise=False),
        Action("validate-all", 10, _handler("validate_all")),
        Action("reload-agent", 10, _handler("reload_agent")),
    ),
)


def main(argv: list[str], env: dict[str, str]) -> int:
    from vmha.ocf.dispatch import run

    return run(SPEC, argv, env)


__all__ = ["SPEC", "main", "GuestService"]
