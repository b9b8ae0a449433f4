"""What the cluster says, read from ``crm_mon --output-as=xml`` (never from its text).

Pure parsing: callers run crm_mon inside a host and hand the XML here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeStatus:
    name: str
    online: bool
    unclean: bool


@dataclass(frozen=True)
class ResourceStatus:
    id: str
    agent: str
    role: str
    active: bool
    failed: bool
    nodes: tuple[str, ...]

    @property
    def started_on(self) -> str | None:
        """The one node it is Started on, None while stopped, moving or active twice."""
        if self.role == "Started" and self.active and not self.failed and len(self.nodes) == 1:
            return self.nodes[0]
        return None


@dataclass(frozen=True)
class OpFailure:
    resource: str
    node: str
    task: str
    rc: int
    status: str  # e.g. "complete", "Timed Out", "error"
    exec_time_ms: int
    exit_reason: str = ""  # the agent's exit reason (crm_mon's exitreason)


@dataclass(frozen=True)
class ClusterStatus:
    dc: str | None
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    resources: dict[str, ResourceStatus] = field(default_factory=dict)
    failures: tuple[OpFailure, ...] = ()

    def online(self) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if s.online)

    def started_on(self, rsc: str) -> str | None:
        r = self.resources.get(rsc)
        return r.started_on if r else None


def _number(text: str | None) -> int:
    digits = "".join(c for c in text or "" if c.isdigit())
    return int(digits) if digits else 0


def _failure(f: ET.Element) -> OpFailure:
    task = f.get("task", "")
    op_key = f.get("op_key", "")
    # op_key is RSC_TASK_INTERVAL, and both RSC and TASK may contain "_" (migrate_to)
    suffix = f"_{task}_{f.get('interval', '0')}"
    resource = op_key[: -len(suffix)] if op_key.endswith(suffix) else op_key.rsplit("_", 2)[0]
    return OpFailure(
        resource=resource,
        node=f.get("node", ""),
        task=task,
        rc=_number(f.get("exitcode")),
        status=f.get("status", ""),
        exec_time_ms=_number(f.get("exec")),
        exit_reason=f.get("exitreason", ""),
    )


def parse_crm_mon(xml_text: str) -> ClusterStatus:
    """Raises ValueError when ``xml_text`` is not crm_mon XML."""
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - our own crm_mon's output
    except ET.ParseError as exc:
        raise ValueError(f"crm_mon output is not XML: {exc}") from exc
    dc_el = root.find("./summary/current_dc")
    dc = dc_el.get("name") if dc_el is not None and dc_el.get("present") == "true" else None
    nodes = {}
    for n in root.iterfind("./nodes/node"):
        name = n.get("name", "")
        nodes[name] = NodeStatus(name, n.get("online") == "true", n.get("unclean") == "true")
    resources = {}
    for r in root.iter("resource"):
        rid = r.get("id", "")
        resources[rid] = ResourceStatus(
            id=rid,
            agent=r.get("resource_agent", ""),
            role=r.get("role", ""),
            active=r.get("active") == "true",
            failed=r.get("failed") == "true",
            nodes=tuple(x.get("name", "") for x in r.iterfind("node")),
        )
    failures = tuple(_failure(f) for f in root.iterfind("./failures/failure"))
    return ClusterStatus(dc, nodes, resources, failures)
