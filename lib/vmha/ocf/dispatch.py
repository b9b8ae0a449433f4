"""The one place an exit code is chosen.

``run(spec, argv, env)`` reads the action, answers ``meta-data`` and ``usage`` itself, builds
the ``OcfContext``, arms a watchdog for the operation's timeout, calls the handler and turns
its outcome into an exit code plus at most one ``ocf-exit-reason:`` line on stderr.

The watchdog exists because a call into libvirt can block forever inside C (a libvirtd that
accepts a connection and never answers): no Python-level timeout can interrupt it, so when
the operation's time is nearly up the watchdog writes the exit reason and ends the process
with ``os._exit``.  Pacemaker then sees a clear failure before it would have to kill us.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TextIO

from vmha.ocf.codes import GenericError, NotConfigured, OcfError, OcfRc
from vmha.ocf.context import OcfContext
from vmha.ocf.log import Log
from vmha.ocf.params import refuse_unsupported
from vmha.ocf.spec import AgentSpec

EXIT_REASON_PREFIX = "ocf-exit-reason:"
# pacemaker-execd keeps the first 128 bytes of an exit reason (EXIT_REASON_MAX_LEN); cut it
# ourselves, on a character boundary and visibly, rather than let it be cut mid-character.
_REASON_MAX_BYTES = 128


def watchdog_margin(timeout_s: float) -> float:
    """How long before Pacemaker's timeout the watchdog fires (and handlers must be done)."""
    return min(2.0, max(0.2, timeout_s * 0.1))


def one_line(reason: str) -> str:
    text = " ".join(reason.split())
    text = "".join(ch for ch in text if ch.isprintable())
    raw = text.encode("utf-8")
    if len(raw) <= _REASON_MAX_BYTES:
        return text
    return raw[: _REASON_MAX_BYTES - 3].decode("utf-8", "ignore") + "..."


class _Reporter:
    """Writes the exit reason exactly once, whoever (handler or watchdog) gets there first."""

    def __init__(self, stderr: TextIO, prefix: str) -> None:
        self._stderr = stderr
        self._prefix = prefix
        self._lock = threading.Lock()
        self._done = False

    def reason(self, text: str) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
        try:
            self._stderr.write(f"{self._prefix}{one_line(text)}\n")
            self._stderr.flush()
        except (OSError, ValueError):
            pass
        return True

    def claim(self) -> bool:
        """Mark the run as finished without a reason; False if the watchdog already fired."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True


def _arm_watchdog(ctx: OcfContext, log: Log, reporter: _Reporter, stdout: TextIO) -> threading.Timer:
    timeout_s = ctx.timeout_s
    delay = max(0.0, timeout_s - watchdog_margin(timeout_s))

    def fire() -> None:
        what = "probe" if ctx.is_probe else ctx.action
        message = (
            f"{what} did not finish within its {timeout_s:g}s timeout "
            "(a hypervisor or command is not answering); giving up before Pacemaker does"
        )
        log.error(message)
        if reporter.reason(message):
            try:
                stdout.flush()
            except (OSError, ValueError):
                pass
            os._exit(int(OcfRc.ERR_GENERIC))

    timer = threading.Timer(delay, fire)
    timer.daemon = True
    timer.start()
    return timer


def run(
    spec: AgentSpec,
    argv: Sequence[str],
    env: Mapping[str, str],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one OCF action of ``spec``; returns the exit code (never raises)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    reporter = _Reporter(err, env.get("OCF_EXIT_REASON_PREFIX") or EXIT_REASON_PREFIX)
    log = Log.from_env(spec.name, env, err)

    if len(argv) < 2 or not argv[1]:
        out.write(spec.usage() + "\n")
        reporter.reason("no action given; " + spec.usage())
        return int(OcfRc.ERR_ARGS)
    action_name = argv[1]

    if action_name == "meta-data":
        from vmha.ocf.metadata import build

        out.write(build(spec).decode("utf-8"))
        return int(OcfRc.SUCCESS)
    if action_name in ("usage", "help", "-h", "--help"):
        out.write(spec.usage() + "\n")
        return int(OcfRc.SUCCESS)

    action = spec.action(action_name)
    if action is None or action.handler is None:
        reporter.reason(f"action {action_name!r} is not implemented; {spec.usage()}")
        return int(OcfRc.ERR_UNIMPLEMENTED)

    ctx = OcfContext.from_env(action_name, env, spec.params)
    timer = _arm_watchdog(ctx, log, reporter, out)
    try:
        if action_name in spec.strict_actions:
            problems = list(ctx.param_errors) + refuse_unsupported(spec.params, ctx.params)
            problems += [f"unknown parameter {name!r}" for name in ctx.unknown_params]
            if problems:
                raise NotConfigured("; ".join(problems))
        else:
            for problem in ctx.param_errors:
                log.warning(f"{problem}; using the default for this {action_name}")
        note = action.handler(ctx, log)
    except OcfError as exc:
        rc = exc.rc
        (log.info if rc in (OcfRc.NOT_RUNNING, OcfRc.DEGRADED) else log.error)(exc.reason)
        if exc.reason and (rc != OcfRc.NOT_RUNNING or not ctx.is_probe):
            if not reporter.reason(exc.reason):
                return int(OcfRc.ERR_GENERIC)
        elif not reporter.claim():
            return int(OcfRc.ERR_GENERIC)
        return int(rc)
    except Exception as exc:  # a bug: report it as one line, never a traceback
        import traceback

        log.debug("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        wrapped = GenericError(f"internal error in {action_name}: {type(exc).__name__}: {exc}")
        log.error(wrapped.reason)
        reporter.reason(wrapped.reason)
        return int(wrapped.rc)
    finally:
        timer.cancel()
    if note:
        if not reporter.reason(note):
            return int(OcfRc.ERR_GENERIC)
    elif not reporter.claim():
        return int(OcfRc.ERR_GENERIC)
    return int(OcfRc.SUCCESS)
