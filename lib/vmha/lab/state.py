"""The record of a running lab (``run/state.json``): what to stop, and only that.

Written before each thing is created, so a lab that failed half way up can still be taken
down exactly: the power switch and host inits by (pid, start time), the namespaces by name,
the fence agent only if it is ours.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from vmha.lab.proc import ProcId


@dataclass
class LabState:
    hosts: list[str] = field(default_factory=list)
    agent: str = "vmha"
    token_ms: int = 1000
    netns: list[str] = field(default_factory=list)
    power: dict[str, int] | None = None
    fence_agent: str | None = None
    vms: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def power_proc(self) -> ProcId | None:
        return ProcId.from_json(self.power) if self.power else None

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> LabState | None:
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return cls()  # unreadable: treat as a lab we know nothing about
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
