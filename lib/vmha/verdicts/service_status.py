"""A service inside a guest: which programs manage it, and what their answers mean.

Everything here is pure: argument lists in, verdicts out.  The programs run in the guest
through the guest agent (``guest-exec``), never through a shell, so every argv starts with
an absolute path and every word is checked here before anything runs.

Status answers, per manager::

    systemd  systemctl is-active <svc>   stdout: active, reloading        -> running  (0)
                                                 inactive                 -> stopped  (7)
                                                 failed                   -> dead     (1)
                                                 activating, deactivating -> changing (1 in a monitor)
                                         else by exit code: 0 running, 3 stopped, other unknown
    sysv     /etc/init.d/<svc> status    LSB: 0 running, 3 stopped, 1/2 dead with a pid or
    commands <status_command>                 lock file left behind, 4 (and anything else) unknown
    openrc   rc-service <svc> status     0 started, 3 stopped, 16 inactive (stopped), 32 crashed
                                         (dead), 4 stopping / 8 starting (changing), else unknown

"dead" is a failure in a monitor (1) but counts as stopped for stop: the program is not there.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple

from vmha.ocf.codes import OcfRc
from vmha.verdicts.guest_command import RefusedCommand, split_command

MANAGERS = ("systemd", "sysv", "openrc", "commands")

# A conservative service name: what systemd units (with templates), init scripts and OpenRC
# services use; no slash, no leading dot or dash (no path, no option), nothing a shell reads.
SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._:-]{0,254}\Z")

# Where the managers' programs live; tried in order (a missing program costs one round trip).
SYSTEMCTL = ("/usr/bin/systemctl", "/bin/systemctl")
RC_SERVICE = ("/sbin/rc-service", "/usr/sbin/rc-service", "/bin/rc-service")


class ServiceState(Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    DEAD = "dead"
    CHANGING = "changing"
    UNKNOWN = "unknown"


class StatusVerdict(NamedTuple):
    state: ServiceState
    detail: str

    @property
    def rc(self) -> OcfRc:
        """The monitor's answer for this state."""
        if self.state is ServiceState.RUNNING:
            return OcfRc.SUCCESS
        if self.state is ServiceState.STOPPED:
            return OcfRc.NOT_RUNNING
        return OcfRc.ERR_GENERIC

    @property
    def stopped(self) -> bool:
        """Nothing of the service runs: enough for stop to succeed."""
        return self.state in (ServiceState.STOPPED, ServiceState.DEAD)


def check_service_name(name: str) -> None:
    """Raises RefusedCommand."""
    if not SERVICE_NAME.match(name) or name.strip(".") == "":
        raise RefusedCommand(
            f"service {name!r} is not a valid service name (letters, digits and @._:- only, "
            "not starting with a dot or dash)"
        )


class Commands(NamedTuple):
    """Candidate argument lists per action; the first whose program exists is used."""

    start: tuple[tuple[str, ...], ...]
    stop: tuple[tuple[str, ...], ...]
    status: tuple[tuple[str, ...], ...]


def commands_for(manager: str, service: str, start: str = "", stop: str = "", status: str = "") -> Commands:
    """The programs that manage ``service`` under ``manager``. Raises RefusedCommand."""
    if manager == "commands":
        return Commands(
            (split_command(start, "start_command"),),
            (split_command(stop, "stop_command"),),
            (split_command(status, "status_command"),),
        )
    check_service_name(service)
    if manager == "systemd":
        return Commands(
            tuple((p, "start", service) for p in SYSTEMCTL),
            tuple((p, "stop", service) for p in SYSTEMCTL),
            tuple((p, "is-active", service) for p in SYSTEMCTL),
        )
    if manager == "sysv":
        script = f"/etc/init.d/{service}"
        return Commands(((script, "start"),), ((script, "stop"),), ((script, "status"),))
    if manager == "openrc":
        return Commands(
            tuple((p, service, "start") for p in RC_SERVICE),
            tuple((p, service, "stop") for p in RC_SERVICE),
            tuple((p, service, "status") for p in RC_SERVICE),
        )
    raise RefusedCommand(f"manager {manager!r} is not one of {', '.join(MANAGERS)}")


_LSB = {
    0: (ServiceState.RUNNING, "running"),
    1: (ServiceState.DEAD, "dead, pid file exists"),
    2: (ServiceState.DEAD, "dead, lock file exists"),
    3: (ServiceState.STOPPED, "not running"),
    4: (ServiceState.UNKNOWN, "status unknown"),
}

# The same LSB codes for a user's own status command, in words that do not assume an init
# script (a pidof or a health probe has no pid file to speak of).
_COMMANDS = {
    0: (ServiceState.RUNNING, "running"),
    1: (ServiceState.DEAD, "dead (status exit 1)"),
    2: (ServiceState.DEAD, "dead (status exit 2)"),
    3: (ServiceState.STOPPED, "not running"),
    4: (ServiceState.UNKNOWN, "status unknown"),
}

_OPENRC = {
    0: (ServiceState.RUNNING, "started"),
    3: (ServiceState.STOPPED, "stopped"),
    4: (ServiceState.CHANGING, "stopping"),
    8: (ServiceState.CHANGING, "starting"),
    16: (ServiceState.STOPPED, "inactive"),
    32: (ServiceState.DEAD, "crashed"),
}

_SYSTEMD_TEXT = {
    "active": ServiceState.RUNNING,
    "reloading": ServiceState.RUNNING,
    "refreshing": ServiceState.RUNNING,
    "inactive": ServiceState.STOPPED,
    "failed": ServiceState.DEAD,
    "activating": ServiceState.CHANGING,
    "deactivating": ServiceState.CHANGING,
    "maintenance": ServiceState.CHANGING,
}


def judge_status(manager: str, exit_code: int | None, stdout: str) -> StatusVerdict:
    """What the status program's answer means. ``exit_code`` None: it was killed by a signal."""
    if exit_code is None:
        return StatusVerdict(ServiceState.UNKNOWN, "status program killed by a signal")
    if manager == "systemd":
        words = stdout.split()
        word = words[0] if words else ""
        state = _SYSTEMD_TEXT.get(word)
        if state is not None:
            return StatusVerdict(state, word)
        if exit_code == 0:
            return StatusVerdict(ServiceState.RUNNING, "active")
        if exit_code == 3:
            return StatusVerdict(ServiceState.STOPPED, "inactive")
        return StatusVerdict(ServiceState.UNKNOWN, f"systemctl is-active exit code {exit_code}")
    table = _OPENRC if manager == "openrc" else _COMMANDS if manager == "commands" else _LSB
    state_detail = table.get(exit_code)
    if state_detail is None:
        return StatusVerdict(ServiceState.UNKNOWN, f"status exit code {exit_code}")
    return StatusVerdict(*state_detail)
