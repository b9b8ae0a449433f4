"""Everything an action needs to know about its invocation, read once from the environment.

``OcfContext.from_env`` is called by the dispatcher with the environment ``main()`` was
given; nothing below it reads ``os.environ``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from vmha.deadline import Deadline
from vmha.ocf.params import Param, Params, parse_params

# Pacemaker's default operation timeout; also what we assume when run by hand.
DEFAULT_TIMEOUT_MS = 20_000
DEFAULT_RSCTMP = "/run/resource-agents"


def _int_or(raw: str | None, default: int) -> int:
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        return default


class OcfContext(NamedTuple):
    action: str
    instance: str
    params: Params
    param_errors: tuple[str, ...]
    unknown_params: tuple[str, ...]
    meta: Mapping[str, str]
    interval_ms: int
    timeout_ms: int
    check_level: int
    rsc_tmp: str
    env: Mapping[str, str]
    started_at: float

    @classmethod
    def from_env(cls, action: str, env: Mapping[str, str], declared: Iterable[Param]) -> OcfContext:
        parsed = parse_params(declared, env)
        meta = {
            key[len("OCF_RESKEY_CRM_meta_") :]: value
            for key, value in env.items()
            if key.startswith("OCF_RESKEY_CRM_meta_")
        }
        return cls(
            action=action,
            instance=env.get("OCF_RESOURCE_INSTANCE", "") or "undef",
            params=parsed.params,
            param_errors=parsed.errors,
            unknown_params=parsed.unknown,
            meta=meta,
            interval_ms=_int_or(meta.get("interval"), 0),
            timeout_ms=_int_or(meta.get("timeout"), DEFAULT_TIMEOUT_MS) or DEFAULT_TIMEOUT_MS,
            check_level=_int_or(env.get("OCF_CHECK_LEVEL"), 0),
            rsc_tmp=env.get("HA_RSCTMP") or DEFAULT_RSCTMP,
            env=env,
            started_at=time.monotonic(),
        )

    @property
    def is_probe(self) -> bool:
        """A one-time monitor (interval 0) Pacemaker runs to learn the state, not to watch it."""
        return self.action == "monitor" and self.interval_ms == 0

    @property
    def resource_id(self) -> str:
        """The primitive's id: the instance name without a clone suffix (``vm1:0`` -> ``vm1``)."""
        return self.instance.split(":", 1)[0]

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000.0

    def deadline(self) -> Deadline:
        """When this operation must have answered, measured from when we started."""
        return Deadline(self.started_at + self.timeout_s)

    @property
    def migrate_target(self) -> str:
        return self.meta.get("migrate_target", "")

    @property
    def migrate_source(self) -> str:
        return self.meta.get("migrate_source", "")

    @property
    def on_node(self) -> str:
        return self.meta.get("on_node", "")
