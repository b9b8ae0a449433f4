"""The QEMU guest agent of a running domain, through libvirt's public ``qemuAgentCommand``.

What is here: ``ping``, ``info`` (version and which commands the agent allows) and ``run``
(``guest-exec`` of an absolute program path with an argument list, then ``guest-exec-status``
until it exits: exit code, stdout, stderr, capped).  No shell is involved anywhere: the guest
agent spawns the program directly.

Every call is bounded twice.  libvirt gets its own per-command timeout (whole seconds), so
libvirtd gives up on a silent agent and frees the domain's agent job for the next caller; and
the call runs under ``vmha.virt.bounded`` with the caller's deadline, so nothing can hold us
past it.  Before a command libvirt may first re-synchronise with the agent (``guest-sync``,
waiting up to its own 5 s), so the timeout we give libvirt leaves room for that; when our
deadline still passes first, the agent is the one not answering (libvirtd answered the
lookup a moment ago), so that is reported as AgentUnresponsive, and the connection is not
marked wedged: an agent call stuck in libvirtd does not block its other calls.

Errors, on top of ``vmha.virt.errors``::

    AgentNotConnected        no agent listening in the guest (booting, not installed, stopped)
    AgentUnresponsive        connected but silent (hung guest), or libvirt's agent job is busy
    AgentCommandUnsupported  the agent has no such command or has it disabled (an
                             OperationUnsupported; RHEL's qemu-ga disables guest-exec by default)
    OperationUnsupported     the hypervisor driver has no guest agent at all (test:///)
    AgentCommandFailed       the agent answered with an error (an AgentError)
    └── GuestProgramMissing  guest-exec: the program does not exist in the guest
    GuestExecTimedOut        the program did not exit in time (an AgentError); it is left
                             running in the guest: the agent has no way to kill it
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from vmha.deadline import Deadline
from vmha.virt import bounded
from vmha.virt.errors import (
    AgentError,
    AgentUnresponsive,
    HypervisorTimeout,
    OperationFailed,
    OperationTimedOut,
    OperationUnsupported,
    VirtError,
)

if TYPE_CHECKING:
    from vmha.virt.domain import Domain

# (virDomainPtr, command JSON, timeout in seconds, flags) -> reply JSON: libvirt_qemu's signature.
AgentCommand = Callable[[Any, str, int, int], str]

# What each call may take at most when the caller has more time: a ping or a status poll
# that needs longer than this is a hung agent, not a slow one.
CALL_TIMEOUT_S = 10.0
# Kept between libvirt's own timeout and our deadline, so libvirt answers first.
SLACK_S = 0.5
# libvirt's guest-sync wait (QEMU_AGENT_WAIT_TIME) before each command.
SYNC_WAIT_S = 5
# Output kept per stream; the agent buffers up to 16 MiB, we keep what an operator can read.
MAX_OUTPUT_BYTES = 64 * 1024
# The environment of a program run in the guest: guest-exec replaces it entirely.
GUEST_ENV = ("LC_ALL=C", "LANG=C", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
POLL_FIRST_S = 0.05
POLL_MAX_S = 0.5


class AgentCommandUnsupported(OperationUnsupported):
    """The guest agent does not know this command or has it disabled."""


class AgentCommandFailed(AgentError):
    """The guest agent answered the command with an error."""


class GuestProgramMissing(AgentCommandFailed):
    """guest-exec could not find the program in the guest."""


class GuestExecTimedOut(AgentError):
    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


class ExecResult(NamedTuple):
    """A program's end in the guest; ``exit_code`` is None when a signal ended it."""

    exit_code: int | None
    stdout: str
    stderr: str
    signal: int | None = None
    truncated: bool = False

    def describe(self) -> str:
        if self.exit_code is not None:
            return f"exit code {self.exit_code}"
        return f"killed by signal {self.signal}"

    def last_line(self) -> str:
        """The last non-empty line of stderr (else stdout): what an operator wants to read."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return ""


class AgentInfo(NamedTuple):
    version: str
    enabled: frozenset[str]
    disabled: frozenset[str]


def libvirt_timeout(remaining: float, cap: float = CALL_TIMEOUT_S) -> int:
    """Whole seconds to give libvirt for one command when ``remaining`` seconds are left.

    Leaves room for libvirt's guest-sync before the command when there is room for it; our
    own deadline still bounds the whole.  0 when not even one second is left.
    """
    budget = remaining - SLACK_S
    if budget < 1.0:
        return 0
    seconds = budget - SYNC_WAIT_S if budget >= 2 * SYNC_WAIT_S else budget / 2
    return max(1, int(min(seconds, cap)))


def _decode(data: Any, limit: int) -> tuple[str, bool]:
    if not data:
        return "", False
    import base64
    import binascii

    try:
        raw = base64.b64decode(str(data), validate=False)
    except (binascii.Error, ValueError):
        return "", True
    cut = len(raw) > limit
    return raw[:limit].decode("utf-8", "replace"), cut


def _real_command() -> AgentCommand:
    import libvirt_qemu

    from vmha.virt.connection import _libvirt

    _libvirt()  # libvirt's own error printer silenced, as for every other call
    fn: AgentCommand = libvirt_qemu.qemuAgentCommand
    return fn


def _refine(exc: VirtError, execute: str, domain: str) -> VirtError:
    """Tell apart what libvirt reports under one code: agent errors come as internal errors."""
    text = exc.message
    low = text.lower()
    if isinstance(exc, OperationTimedOut):
        # libvirt waits for the domain's agent job (another agent command still runs).
        return AgentUnresponsive(f"guest agent of {domain} busy: {text}", exc.code)
    if isinstance(exc, OperationUnsupported) and "connection driver" in low:
        return OperationUnsupported(f"hypervisor driver has no guest agent support (domain {domain})", exc.code)
    if isinstance(exc, OperationFailed) and "agent command" in low:
        # QEMU answers CommandNotFound for unknown and for disabled commands; libvirt keeps
        # only the description ("The command X has not been found", "Command X has been disabled").
        if "has not been found" in low or "has been disabled" in low or "commandnotfound" in low:
            return AgentCommandUnsupported(
                f"guest agent of {domain} does not allow {execute} (disabled in the guest, or too old)", exc.code
            )
        if execute == "guest-exec" and "no such file or directory" in low:
            return GuestProgramMissing(text, exc.code)
        return AgentCommandFailed(text, exc.code)
    return exc


class GuestAgent:
    """The guest agent of one running domain; every method takes the deadline it must meet.

    ``command`` replaces ``libvirt_qemu.qemuAgentCommand`` (tests use a fake).
    """

    def __init__(
        self,
        dom: Domain,
        *,
        command: AgentCommand | None = None,
        call_timeout: float = CALL_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dom = dom
        self._command = command
        self.call_timeout = call_timeout
        self._sleep = sleep

    def command(self, execute: str, arguments: Mapping[str, Any] | None, deadline: Deadline) -> Any:
        """The ``return`` value of one agent command.

        Raises AgentNotConnected, AgentUnresponsive, AgentCommandUnsupported,
        AgentCommandFailed, OperationUnsupported, HypervisorTimeout, or another VirtError.
        """
        name = self.dom.name
        what = f"guest agent {execute} in {name}"
        seconds = libvirt_timeout(deadline.remaining(), self.call_timeout)
        if seconds < 1:
            raise AgentUnresponsive(f"{what}: no time left before the deadline")
        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = dict(arguments)
        fn = self._command or _real_command()
        wedge = self.dom.conn.wedge
        if wedge:
            raise HypervisorTimeout(f"{what}: not attempted, the hypervisor stopped answering during {wedge.what}")
        # libvirt's worst case: two guest-sync attempts, then the command itself.
        limit = deadline.within(seconds + 2 * SYNC_WAIT_S + SLACK_S)
        t0 = time.monotonic()
        try:
            reply = bounded.call(fn, self.dom.raw, json.dumps(request), seconds, 0, deadline=limit, what=what)
        except HypervisorTimeout as exc:
            raise AgentUnresponsive(
                f"guest agent of {name} did not answer {execute} within {time.monotonic() - t0:.1f}s", exc.code
            ) from exc
        except VirtError as exc:
            raise _refine(exc, execute, name) from exc
        try:
            parsed = json.loads(reply)
        except (TypeError, ValueError):
            raise AgentCommandFailed(f"{what}: reply is not JSON") from None
        if not isinstance(parsed, dict) or "return" not in parsed:
            raise AgentCommandFailed(f"{what}: reply has no 'return'")
        return parsed["return"]

    def ping(self, deadline: Deadline) -> None:
        """Raises as ``command``; returns when the agent answered."""
        self.command("guest-ping", None, deadline)

    def info(self, deadline: Deadline) -> AgentInfo:
        ret = self.command("guest-info", None, deadline)
        enabled: set[str] = set()
        disabled: set[str] = set()
        if isinstance(ret, dict):
            for entry in ret.get("supported_commands") or ():
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    (enabled if entry.get("enabled", True) else disabled).add(entry["name"])
            version = str(ret.get("version", ""))
        else:
            version = ""
        return AgentInfo(version, frozenset(enabled), frozenset(disabled))

    def start(self, argv: Sequence[str], deadline: Deadline) -> int:
        """Spawn ``argv`` in the guest (argv[0] an absolute path); its PID there.

        Raises ValueError for a relative program path; otherwise as ``command``.
        """
        if not argv or not argv[0].startswith("/"):
            raise ValueError(f"guest program must be an absolute path: {list(argv)!r}")
        ret = self.command(
            "guest-exec",
            {"path": argv[0], "arg": list(argv[1:]), "env": list(GUEST_ENV), "capture-output": True},
            deadline,
        )
        if not isinstance(ret, dict) or not isinstance(ret.get("pid"), int):
            raise AgentCommandFailed(f"guest agent guest-exec in {self.dom.name}: reply has no pid")
        return int(ret["pid"])

    def status(self, pid: int, deadline: Deadline, max_output: int = MAX_OUTPUT_BYTES) -> ExecResult | None:
        """The program's result, or None while it still runs. Raises as ``command``."""
        ret = self.command("guest-exec-status", {"pid": pid}, deadline)
        if not isinstance(ret, dict):
            raise AgentCommandFailed(f"guest agent guest-exec-status in {self.dom.name}: unexpected reply")
        if not ret.get("exited"):
            return None
        out, cut_out = _decode(ret.get("out-data"), max_output)
        err, cut_err = _decode(ret.get("err-data"), max_output)
        truncated = cut_out or cut_err or bool(ret.get("out-truncated")) or bool(ret.get("err-truncated"))
        signal = ret.get("signal")
        code = ret.get("exitcode")
        if isinstance(signal, int) and not isinstance(code, int):
            return ExecResult(None, out, err, signal, truncated)
        return ExecResult(int(code) if isinstance(code, int) else None, out, err, None, truncated)

    def run(
        self,
        argv: Sequence[str],
        deadline: Deadline,
        *,
        max_output: int = MAX_OUTPUT_BYTES,
    ) -> ExecResult:
        """Run ``argv`` in the guest and wait until it exits or ``deadline`` passes.

        Raises GuestExecTimedOut (the program keeps running in the guest), GuestProgramMissing,
        ValueError for a relative path; otherwise as ``command``.
        """
        pid = self.start(argv, deadline)
        delay = POLL_FIRST_S
        t0 = time.monotonic()
        while True:
            result = self.status(pid, deadline, max_output)
            if result is not None:
                return result
            # The next poll needs time for itself: stop while there is still some.
            if libvirt_timeout(deadline.remaining() - delay, self.call_timeout) < 1:
                raise GuestExecTimedOut(
                    f"{argv[0]} still running in guest {self.dom.name} after "
                    f"{time.monotonic() - t0:.1f}s (guest PID {pid})",
                    pid,
                )
            self._sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)


def run_in_guest(uri: str, domain: str, argv: Sequence[str], *, timeout: float = 30.0) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr) of ``argv`` run in ``domain`` (name or UUID) at ``uri``.

    For tests and tools: opens its own connection. Raises VirtError subclasses as above.
    """
    from vmha.virt.connection import Connection

    deadline = Deadline.after(timeout)
    with Connection.open(uri, deadline) as conn:
        dom = conn.lookup(uuid=domain, name=None) if looks_like_uuid(domain) else conn.lookup(name=domain)
        result = GuestAgent(dom).run(argv, deadline)
    return result.exit_code, result.stdout, result.stderr


def looks_like_uuid(text: str) -> bool:
    import re

    return re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", text) is not None
