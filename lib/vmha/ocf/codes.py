"""OCF 1.1 exit codes, and the exceptions that carry them.

An action handler returns normally for success (0) and raises for everything else; the
dispatcher (``vmha.ocf.dispatch``) is the only place that turns an exception into an exit
code and an ``ocf-exit-reason:`` line.  The tree, with the code each class exits with::

    OcfError                       1  (abstract: every OCF outcome other than success)
    ├── GenericError               1  OCF_ERR_GENERIC       soft: restart here
    ├── InvalidArgs                2  OCF_ERR_ARGS          hard: invalid on this host
    ├── Unimplemented              3  OCF_ERR_UNIMPLEMENTED
    ├── InsufficientPrivilege      4  OCF_ERR_PERM          hard
    ├── NotInstalled               5  OCF_ERR_INSTALLED     hard: something missing on this host
    ├── NotConfigured              6  OCF_ERR_CONFIGURED    fatal: the parameters are wrong anywhere
    ├── NotRunning                 7  OCF_NOT_RUNNING       monitor only
    ├── RunningPromoted            8  OCF_RUNNING_PROMOTED
    ├── FailedPromoted             9  OCF_FAILED_PROMOTED
    ├── Degraded                 190  OCF_DEGRADED          running, but not healthy
    └── DegradedPromoted         191  OCF_DEGRADED_PROMOTED

The message of an exception is the exit reason an operator reads in ``crm_mon``: say what
is wrong and what to do, in one line.
"""

from __future__ import annotations

from enum import IntEnum


class OcfRc(IntEnum):
    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_PROMOTED = 8
    FAILED_PROMOTED = 9
    DEGRADED = 190
    DEGRADED_PROMOTED = 191


class OcfError(Exception):
    """An OCF outcome other than success; ``str(exc)`` is the exit reason."""

    rc: OcfRc = OcfRc.ERR_GENERIC

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GenericError(OcfError):
    rc = OcfRc.ERR_GENERIC


class InvalidArgs(OcfError):
    rc = OcfRc.ERR_ARGS


class Unimplemented(OcfError):
    rc = OcfRc.ERR_UNIMPLEMENTED


class InsufficientPrivilege(OcfError):
    rc = OcfRc.ERR_PERM


class NotInstalled(OcfError):
    rc = OcfRc.ERR_INSTALLED


class NotConfigured(OcfError):
    rc = OcfRc.ERR_CONFIGURED


class NotRunning(OcfError):
    rc = OcfRc.NOT_RUNNING


class RunningPromoted(OcfError):
    rc = OcfRc.RUNNING_PROMOTED


class FailedPromoted(OcfError):
    rc = OcfRc.FAILED_PROMOTED


class Degraded(OcfError):
    rc = OcfRc.DEGRADED


class DegradedPromoted(OcfError):
    rc = OcfRc.DEGRADED_PROMOTED


_BY_RC: dict[OcfRc, type[OcfError]] = {
    cls.rc: cls
    for cls in (
        GenericError,
        InvalidArgs,
        Unimplemented,
        InsufficientPrivilege,
        NotInstalled,
        NotConfigured,
        NotRunning,
        RunningPromoted,
        FailedPromoted,
        Degraded,
        DegradedPromoted,
    )
}


def error_for(rc: OcfRc, reason: str) -> OcfError:
    """The exception that exits with ``rc`` (``rc`` must not be SUCCESS)."""
    return _BY_RC[rc](reason)
