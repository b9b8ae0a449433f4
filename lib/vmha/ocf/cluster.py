"""Pacemaker's command-line tools (crm_resource, crm_node, attrd_updater, crm_attribute,
cibadmin).

All of them run through one ``CommandRunner``; this module only knows their arguments and
how to read their answers.

Raises:
    ClusterCommandFailed: the tool ran and said no (message carries its stderr).
    AttrdNotRunning: an attrd_updater call found no attrd on this node.
    CommandNotFound / CommandTimedOut: from the runner.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from vmha.ocf.runner import CommandFailed, CommandRunner, Completed

# pacemaker's CRM_EX_NOT_CONNECTED: the tool could not reach its daemon (no cluster here).
RC_NOT_CONNECTED = 102
# CRM_EX_NOSUCH: no such object (a resource, an attribute no node has, a utilization unset).
RC_NO_SUCH = 105
# What Pacemaker's tools read to name "this node" when run by an agent (lib/common/attrs.c).
NODE_TARGET_ENV = (
    "OCF_RESKEY_CRM_meta_on_node",
    "OCF_RESKEY_CRM_meta_container_attribute_target",
    "OCF_RESKEY_CRM_meta_physical_host",
)


class ClusterCommandFailed(CommandFailed):
    pass


class AttrdNotRunning(ClusterCommandFailed):
    """attrd is not running on this node (rc 102): the cluster is not up here."""


class ClusterNode(NamedTuple):
    node_id: str
    name: str
    state: str


def _check(done: Completed, *, attrd: bool = False) -> Completed:
    """``done``, or ClusterCommandFailed with the tool's complaint; ``attrd``: an
    attrd_updater call, whose rc 102 is AttrdNotRunning."""
    if done.ok:
        return done
    if attrd and done.rc == RC_NOT_CONNECTED:
        raise AttrdNotRunning(done.complaint())
    raise ClusterCommandFailed(done.complaint())


_KV = re.compile(r'(\w+)=(?:"([^"]*)"|(\S*))')


def parse_attrd_query(text: str) -> dict[str, str]:
    """``{node: value}`` from ``attrd_updater --query --all`` text output.

    Pacemaker 2.1 prints one line per node, ``name="#health-vmha" host="ha1" value="red"``
    (older releases the same without some quotes); a node whose value was deleted shows
    ``value=""``.  Lines without a host are not about a node and are skipped.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _KV.finditer(line)}
        host = fields.get("host")
        if host:
            found[host] = fields.get("value", "")
    return found


def _parse_cib_xml(text: str) -> Any:
    """cibadmin's answer, parsed without entities, DTDs or network.  Raises ClusterCommandFailed."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(text.encode(), parser)
    except etree.XMLSyntaxError as exc:
        raise ClusterCommandFailed(f"cibadmin answered something that is not XML: {exc.msg}") from None


class ClusterTools:
    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner

    def set_utilization(self, resource: str, name: str, value: str, *, timeout: float) -> None:
        _check(
            self._runner.run(
                [
                    "crm_resource",
                    "--resource",
                    resource,
                    "--utilization",
                    "--set-parameter",
                    name,
                    "--parameter-value",
                    value,
                ],
                timeout=timeout,
            )
        )

    def delete_utilization(self, resource: str, name: str, *, timeout: float) -> None:
        done = self._runner.run(
            ["crm_resource", "--resource", resource, "--utilization", "--delete-parameter", name],
            timeout=timeout,
        )
        # crm_resource answers 105 (no such object) when the attribute is already gone.
        if done.rc not in (0, RC_NO_SUCH):
            _check(done)

    def utilization(self, resource: str, *, timeout: float) -> dict[str, str]:
        """The resource's utilization attributes as the CIB holds them (one query, no write)."""
        done = self._runner.run(
            ["cibadmin", "--query", "--scope", "resources", "--xpath", f"//primitive[@id='{resource}']/utilization"],
            timeout=timeout,
        )
        if done.rc == RC_NO_SUCH:  # no utilization section yet
            return {}
        root = _parse_cib_xml(_check(done).stdout)
        return {nv.get("name", ""): nv.get("value", "") for nv in root.iter("nvpair")}

    def top_level_meta(self, resource: str, name: str, *, timeout: float) -> str | None:
        """The meta attribute ``name`` of the top-level resource holding ``resource`` (its
        clone or group, or itself when it stands alone), None when unset there.

        The scheduler reads some meta attributes (allow-unhealthy-nodes) only there, and
        Pacemaker passes few meta attributes to an agent: this reads the configuration.
        Raises CommandError (ClusterCommandFailed when the CIB cannot be read).
        """
        xpath = f"//primitive[@id='{resource}']/ancestor-or-self::*[parent::resources]"
        done = self._runner.run(["cibadmin", "--query", "--xpath", xpath], timeout=timeout)
        if done.rc == RC_NO_SUCH:  # no such resource
            return None
        top = _parse_cib_xml(_check(done).stdout)
        for nvpair in top.iterfind("meta_attributes/nvpair"):
            if nvpair.get("name") == name:
                return str(nvpair.get("value", ""))
        return None

    def local_node(self, *, timeout: float) -> str:
        return _check(self._runner.run(["crm_node", "--name"], timeout=timeout)).stdout.strip()

    def nodes(self, *, timeout: float) -> list[ClusterNode]:
        """Members of the cluster as ``crm_node --list`` reports them."""
        out = _check(self._runner.run(["crm_node", "--list"], timeout=timeout)).stdout
        found = []
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 2:
                found.append(ClusterNode(fields[0], fields[1], fields[2] if len(fields) > 2 else ""))
        return found

    def members(self, *, timeout: float) -> list[tuple[str, bool]]:
        """(name, online) of every node ``crm_node --list`` knows; online means "member"."""
        return [(n.name, n.state == "member") for n in self.nodes(timeout=timeout)]

    # -- node attributes (attrd) and node utilization (CIB) --------------------------------

    def set_node_attribute(self, name: str, value: str, *, timeout: float, private: bool = False) -> None:
        """This node's transient attribute through attrd (e.g. ``#health-vmha``).
        ``private``: kept by attrd only, never written to the CIB (a CIB write would make
        the scheduler run again for an attribute no rule reads)."""
        argv = ["attrd_updater", "--name", name, "--update", value]
        _check(self._runner.run([*argv, "--private"] if private else argv, timeout=timeout), attrd=True)

    def delete_node_attribute(self, name: str, *, timeout: float) -> None:
        done = self._runner.run(["attrd_updater", "--name", name, "--delete"], timeout=timeout)
        _check(done, attrd=True)

    def query_node_attribute(self, name: str, *, timeout: float) -> dict[str, str]:
        """Every node's value of a transient attribute.  The variables Pacemaker gives an
        agent to name its own node are withheld: attrd_updater 2.1 reads them even with
        --all and then answers for that one node only, so every peer would look unknown."""
        done = self._runner.run(
            ["attrd_updater", "--query", "--all", "--name", name], timeout=timeout, env_unset=NODE_TARGET_ENV
        )
        if done.rc == RC_NO_SUCH:
            return {}  # no node has the attribute
        return parse_attrd_query(_check(done, attrd=True).stdout)

    def node_utilization(self, node: str, name: str, *, timeout: float) -> str | None:
        """The node's utilization attribute as the CIB holds it, None when it has none."""
        argv = ["crm_attribute", "--node", node, "--utilization", "--name", name, "--query", "--quiet"]
        done = self._runner.run(argv, timeout=timeout)
        if done.rc == RC_NO_SUCH:
            return None
        return _check(done).stdout.strip() or None

    def set_node_utilization(self, node: str, name: str, value: str, *, timeout: float) -> None:
        argv = ["crm_attribute", "--node", node, "--utilization", "--name", name, "--update", value]
        _check(self._runner.run(argv, timeout=timeout))
