"""What an agent is, as data: its name, descriptions, parameters and actions.

The dispatcher runs an ``AgentSpec``; the metadata is generated from the same object, so
what ``pcs resource describe`` shows is what the agent parses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from vmha.ocf.context import OcfContext
from vmha.ocf.log import Log
from vmha.ocf.params import Param

# A handler returns None, or a note: an exit reason to show although the action succeeded
# (e.g. a health agent that capped a red to yellow); raising is how it reports anything else.
Handler = Callable[[OcfContext, Log], "str | None"]


class Action(NamedTuple):
    name: str
    timeout_s: int
    handler: Handler | None = None
    interval_s: int | None = None
    depth: int | None = None
    role: str | None = None
    # Advertised in the metadata; hidden actions (e.g. ``status``) are accepted but not listed.
    advertise: bool = True


class AgentSpec(NamedTuple):
    name: str
    version: str
    shortdesc: str
    longdesc: str
    params: tuple[Param, ...]
    actions: tuple[Action, ...]
    # Actions that refuse bad parameter values instead of falling back to defaults.
    strict_actions: frozenset[str] = frozenset({"start", "validate-all", "migrate_to", "migrate_from", "reload-agent"})

    def action(self, name: str) -> Action | None:
        for action in self.actions:
            if action.name == name:
                return action
        return None

    def usage(self) -> str:
        names = "|".join(dict.fromkeys(a.name for a in self.actions if a.advertise))
        return f"usage: {self.name} {{{names}|meta-data|usage}}"
