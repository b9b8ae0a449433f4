"""The cluster's own account of what happened and when: Pacemaker alerts, one line each.

Why: the lab's figures (migration_s, failover_s, evacuation_s) were first taken by polling
``crm_mon`` many times a second; on a 2-core machine that costs a good part of a core, in
the very second the cluster is starting VMs, and the answer is only as fine as the poll.
Pacemaker's controller times every event itself (``CRM_alert_timestamp_epoch``/``_usec``,
taken before the alert agent runs) as it records it: a node lost, a fencing done, an
operation's result (the moment ``crm_mon`` starts to show it), a node attribute changed.
The lab configures an alert whose agent, a few lines of ``/bin/sh`` (no interpreter to
start, ~1 ms), appends one tab-separated line per event to ``events.tsv``; the scenarios
poll the cluster slowly to know *that* something happened and read here *when*.

Clocks: every host of the lab runs on the machine's one kernel clock, so event times compare
with ``time.time()`` in the lab process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ALERT_ID = "vmha-lab-events"
FIELDS = (
    "kind",
    "reporter",
    "node",
    "rsc",
    "task",
    "interval",
    "rc",
    "target_rc",
    "status",
    "desc",
    "attribute",
    "value",
    "at",
    "exec_ms",
)

# Run by pacemaker-controld as hacluster for every event it selects.  printf writes the
# line with one write() and the file is opened for appending, so lines from the hosts'
# controllers never interleave.
ALERT_AGENT = """#!/bin/sh
# vmha lab alert agent: one tab-separated line per cluster event, appended to the recipient
[ -n "${CRM_alert_recipient:-}" ] || exit 0
read -r reporter < /proc/sys/kernel/hostname
printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s.%06d\\t%s\\n' \\
  "${CRM_alert_kind:-}" "$reporter" "${CRM_alert_node:-}" "${CRM_alert_rsc:-}" \\
  "${CRM_alert_task:-}" "${CRM_alert_interval:-}" "${CRM_alert_rc:-}" \\
  "${CRM_alert_target_rc:-}" "${CRM_alert_status:-}" "${CRM_alert_desc:-}" \\
  "${CRM_alert_attribute_name:-}" "${CRM_alert_attribute_value:-}" \\
  "${CRM_alert_timestamp_epoch:-0}" "${CRM_alert_timestamp_usec:-0}" \\
  "${CRM_alert_exec_time:-}" >> "$CRM_alert_recipient"
"""


def alert_xml(agent_path: str, events_path: str, attributes: Sequence[str]) -> str:
    """The CIB ``<alerts>`` section: node, fencing and resource events, and changes of the
    named node attributes (``select_attributes`` is the one kind not sent by default)."""
    from xml.sax.saxutils import quoteattr

    attrs = "".join(
        f"<attribute id={quoteattr(f'{ALERT_ID}-attr-{i}')} name={quoteattr(a)}/>" for i, a in enumerate(attributes)
    )
    return (
        f"<alerts><alert id={quoteattr(ALERT_ID)} path={quoteattr(agent_path)}>"
        "<select><select_nodes/><select_fencing/><select_resources/>"
        f"<select_attributes>{attrs}</select_attributes></select>"
        f"<recipient id={quoteattr(ALERT_ID + '-file')} value={quoteattr(events_path)}/>"
        "</alert></alerts>"
    )


@dataclass(frozen=True)
class Event:
    kind: str  # node, fencing, resource, attribute
    reporter: str  # the host whose controller sent it
    node: str  # the node it is about (for resources: where the operation ran)
    rsc: str
    task: str  # start, stop, migrate_to, ... (fencing: the action)
    interval_ms: int
    rc: int | None
    target_rc: int | None
    status: str
    desc: str  # node: member/lost; resource: the result in words
    attribute: str
    value: str
    at: float  # epoch seconds, as the controller stamped the event
    exec_ms: int | None

    @property
    def ok(self) -> bool:
        return self.rc == 0 if self.target_rc is None else self.rc == self.target_rc

    @property
    def began(self) -> float:
        """When a resource operation started (its result time less its run time)."""
        return self.at - (self.exec_ms or 0) / 1000.0


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_line(line: str) -> Event | None:
    """None for a line that is not ours (torn, or from another version of the agent)."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) != len(FIELDS):
        return None
    f = dict(zip(FIELDS, parts))  # noqa: B905 - the length is checked above (and Python 3.9 has no strict)
    try:
        at = float(f["at"])
    except ValueError:
        return None
    return Event(
        f["kind"],
        f["reporter"],
        f["node"],
        f["rsc"],
        f["task"],
        _int(f["interval"]) or 0,
        _int(f["rc"]),
        _int(f["target_rc"]),
        f["status"],
        f["desc"],
        f["attribute"],
        f["value"],
        at,
        _int(f["exec_ms"]),
    )


def read(path: str, since: float = 0.0) -> list[Event]:
    """Events stamped at or after ``since``, oldest first; [] when there is no file yet."""
    try:
        with open(path, errors="replace") as fh:
            found = [e for e in map(parse_line, fh) if e is not None and e.at >= since]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda e: e.at)


def install(agent_path: str, events_path: str, owner: tuple[int, int]) -> None:
    """The alert agent (root's, executable by hacluster) and an empty events file that
    hacluster may append to and nobody else may write."""
    tmp = agent_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(ALERT_AGENT)
    os.chmod(tmp, 0o755)  # noqa: S103 - pacemaker-controld runs it as hacluster
    os.replace(tmp, agent_path)
    fd = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    os.close(fd)
    os.chown(events_path, *owner)


# -- questions the scenarios ask ---------------------------------------------------------------


def operations(events: Iterable[Event], rsc: str, since: float, until: float | None = None) -> list[Event]:
    """One-shot operations (not recurring monitors) of ``rsc`` in [since, until]."""
    return [
        e
        for e in events
        if e.kind == "resource"
        and e.rsc == rsc
        and e.interval_ms == 0
        and e.at >= since
        and (until is None or e.at <= until)
    ]


def settled_at(events: Iterable[Event], rsc: str, since: float, seen: float) -> float | None:
    """When ``rsc`` reached the state a poll saw at ``seen``: the last one-shot operation on
    it before that poll (a migration's stop on the source, a recovery's start)."""
    ops = operations(events, rsc, since, seen)
    return ops[-1].at if ops else None


def first(events: Iterable[Event], since: float, **match: str) -> Event | None:
    """The first event at or after ``since`` whose fields equal ``match``."""
    for e in events:
        if e.at >= since and all(getattr(e, k) == v for k, v in match.items()):
            return e
    return None
