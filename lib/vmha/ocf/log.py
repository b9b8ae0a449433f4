"""Logging the way Pacemaker's own agents log.

``HA_LOGFACILITY`` (e.g. ``daemon``; ``none`` turns syslog off) sends lines to syslog,
``HA_LOGFILE`` appends them to a file, ``HA_DEBUGLOG`` gets debug lines too, and
``HA_DEBUG=1`` (or ``HA_debug``) turns debug lines on.  With neither a facility nor a file
the lines go to stderr, which pacemaker-execd records in its own log.  The standard
``logging`` package is not used: this runs on every monitor and must start fast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TextIO

_LEVELS = {"debug": 7, "info": 6, "warning": 4, "error": 3}
_LABEL = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR"}


class Log:
    def __init__(
        self,
        tag: str,
        *,
        facility: str = "",
        logfile: str = "",
        debuglog: str = "",
        debug: bool = False,
        stderr: TextIO | None = None,
    ) -> None:
        self.tag = tag
        self._facility = "" if facility.lower() in ("", "none") else facility.lower()
        self._logfile = logfile
        self._debuglog = debuglog
        self.debug_enabled = debug
        self._stderr = stderr
        self._syslog_open = False

    @classmethod
    def from_env(cls, agent: str, env: Mapping[str, str], stderr: TextIO | None) -> Log:
        instance = env.get("OCF_RESOURCE_INSTANCE", "")
        tag = f"{agent}({instance})" if instance else agent
        debug = (env.get("HA_DEBUG") or env.get("HA_debug") or "0") not in ("0", "", "false")
        return cls(
            tag,
            facility=env.get("HA_LOGFACILITY", ""),
            logfile=env.get("HA_LOGFILE", ""),
            debuglog=env.get("HA_DEBUGLOG", ""),
            debug=debug,
            stderr=stderr,
        )

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._emit("debug", msg)

    def info(self, msg: str) -> None:
        self._emit("info", msg)

    def warning(self, msg: str) -> None:
        self._emit("warning", msg)

    def error(self, msg: str) -> None:
        self._emit("error", msg)

    def _emit(self, level: str, msg: str) -> None:
        msg = " ".join(msg.splitlines())
        wrote = False
        if self._facility:
            wrote = self._to_syslog(level, msg) or wrote
        line = f"{time.strftime('%b %d %H:%M:%S')} {self.tag}[{os.getpid()}]: {_LABEL[level]}: {msg}\n"
        if self._logfile:
            wrote = self._append(self._logfile, line) or wrote
        if self._debuglog and level == "debug":
            wrote = self._append(self._debuglog, line) or wrote
        if not wrote and self._stderr is not None:
            try:
                self._stderr.write(f"{_LABEL[level]}: {msg}\n")
            except (OSError, ValueError):
                pass

    def _to_syslog(self, level: str, msg: str) -> bool:
        import syslog

        facility = getattr(syslog, "LOG_" + self._facility.upper(), None)
        if facility is None:
            return False
        if not self._syslog_open:
            syslog.openlog(self.tag, syslog.LOG_PID, facility)
            self._syslog_open = True
        syslog.syslog(_LEVELS[level], f"{_LABEL[level]}: {msg}")
        return True

    @staticmethod
    def _append(path: str, line: str) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError:
            return False
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
        return True
