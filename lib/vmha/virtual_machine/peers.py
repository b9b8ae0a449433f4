"""The peer check before start: refuse to start a second copy of a domain that already runs
on another cluster member (the ``peer_check`` parameter).

How each peer's libvirt is reached is ``vmha.virtual_machine.migration.peer_uri``.
"""

from __future__ import annotations

from vmha.ocf.codes import GenericError
from vmha.ocf.runner import CommandError
from vmha.virt.connection import Connection
from vmha.virt.errors import HypervisorUnreachable, VirtError
from vmha.virtual_machine.resource import Identity, Resource


def check_peers(res: Resource, ident: Identity) -> None:
    """Refuse to start when a peer that is a cluster member runs this domain (see the
    peer_check parameter).  Only members are asked: a lost node is fenced or about to be,
    and waiting for it would only delay the failover it caused."""
    if not res.p.flag("peer_check"):
        return
    for node, uri in peers_running(res, ident):
        raise GenericError(f"refusing to start a second copy: domain {ident.name} already runs on {node} ({uri})")


def peers_running(res: Resource, ident: Identity) -> list[tuple[str, str]]:
    """The cluster members (node, URI) whose libvirt says this domain runs there, asked
    read-only within peer_check_timeout in all; empty when no peer URI is known."""
    from vmha.virtual_machine.migration import peer_uri

    if peer_uri(res.p, "%n") is None:
        return []
    from vmha.ocf.cluster import ClusterTools

    budget = float(res.p.integer("peer_check_timeout"))
    tools = ClusterTools(res.runner)
    try:
        local = res.ctx.on_node or tools.local_node(timeout=min(budget, 5.0))
        nodes = [n.name for n in tools.nodes(timeout=min(budget, 5.0)) if n.state != "lost"]
    except CommandError as exc:
        res.log.warning(f"peer check skipped: cannot list cluster nodes ({exc})")
        return []
    limit = res.deadline.within(budget)  # for the whole check, however many peers
    found_on: list[tuple[str, str]] = []
    for node in nodes:
        uri = peer_uri(res.p, node)
        if node == local or uri is None:
            continue
        try:
            with Connection.open(uri, limit, readonly=True) as peer:
                found = peer.find(uuid=ident.uuid, name=ident.name)
                if found is not None and found.status().active:
                    found_on.append((node, uri))
        except HypervisorUnreachable as exc:
            res.log.warning(
                f"peer check: {node} not reachable ({exc.message}); starting anyway, fencing covers an unreachable peer"
            )
        except VirtError as exc:
            res.log.warning(f"peer check on {node}: {exc.message}")
    return found_on
