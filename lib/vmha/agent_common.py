"""What the agents share: the hypervisor parameter and the wrapper that runs an action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmha.ocf.codes import GenericError, NotInstalled
from vmha.ocf.context import OcfContext
from vmha.ocf.log import Log
from vmha.ocf.params import Param, ParamType, Value
from vmha.ocf.runner import CommandNotFound
from vmha.ocf.spec import Handler
from vmha.virt.errors import VirtError

DEFAULT_HYPERVISOR = "qemu:///system"


def uri_check(value: Value) -> str | None:
    text = str(value)
    if any(ch.isspace() for ch in text) or "\0" in text:
        return "a libvirt URI contains no whitespace"
    if "://" not in text and ":" not in text:
        return f"{text!r} is not a libvirt URI (e.g. qemu:///system)"
    return None


def hypervisor_param(longdesc: str, *, reloadable: bool = False) -> Param:
    """``hypervisor``: one name and one default for every vmha agent."""
    return Param(
        "hypervisor",
        ParamType.STRING,
        "Hypervisor URI",
        longdesc,
        default=DEFAULT_HYPERVISOR,
        reloadable=reloadable,
        check=uri_check,
    )


def handler(make: Callable[[OcfContext, Log], Any], method: str) -> Handler:
    """The dispatcher's handler for ``make(ctx, log).<method>()``.

    What an action did not handle itself becomes an OCF outcome here: anything libvirt could
    not do is a generic failure, a missing program is "not installed". A string the method
    returns is a note for the dispatcher (an exit reason on success).
    """

    def run(ctx: OcfContext, log: Log) -> str | None:
        try:
            note = getattr(make(ctx, log), method)()
        except VirtError as exc:
            raise GenericError(exc.message) from exc
        except CommandNotFound as exc:
            raise NotInstalled(str(exc)) from exc
        return note if isinstance(note, str) else None

    run.__name__ = method
    return run
