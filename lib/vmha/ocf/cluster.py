"""Pacemaker's command-line tools (crm_resource, crm_node, attrd_updater, crm_attribute).

All of them run through one ``CommandRunner``; this module only knows their arguments and
how to read their answers.

Raises:
    ClusterCommandFailed: the tool ran and said no (message carries its stderr).
    CommandNotFound / CommandTimedOut: from the runner.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from vmha.ocf.runner import CommandError, CommandRunner, Completed


class ClusterCommandFailed(CommandError):
    pass


class ClusterNode(NamedTuple):
    node_id: str
    name: str
    state: str


def _check(done: Completed) -> Completed:
    if not done.ok:
        tool = done.argv[0].rsplit("/", 1)[-1]
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ClusterCommandFailed(f"{tool} failed (rc {done.rc}): {detail[-1] if detail else 'no output'}")
    return done


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
        if done.rc not in (0, 105):
            _check(done)

    def utilization(self, resource: str, *, timeout: float) -> dict[str, str]:
        """The resource's utilization attributes as the CIB holds them (one query, no write)."""
        done = self._runner.run(
            ["cibadmin", "--query", "--scope", "resources", "--xpath", f"//primitive[@id='{resource}']/utilization"],
            timeout=timeout,
        )
        if done.rc == 105:  # no utilization section yet
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
        if done.rc == 105:  # no such resource
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

    def set_node_attribute(self, name: str, value: str, *, timeout: float) -> None:
        """Transient node attribute through attrd (e.g. ``#health-vmha``)."""
        _check(self._runner.run(["attrd_updater", "--name", name, "--update", value], timeout=timeout))
