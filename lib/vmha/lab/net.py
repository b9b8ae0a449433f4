"""The lab network: one bridge in a LAN namespace, one veth per host, 10.99.0.N/24; and in
every host a guest bridge (``vmbr0``, 192.168.77.1/24) its guests are plugged into.

Nothing is routed to the machine's own network: the bridge lives in the ``vmha-lan``
namespace and every address is configured inside a lab namespace, so lab traffic never
leaves them.  Deleting the namespaces deletes the veths and the bridge with them.
"""

from __future__ import annotations

from vmha.lab.config import GUEST_BRIDGE, GUEST_SUBNET, LAN_NETNS, node_address, node_netns
from vmha.ocf.runner import CommandRunner

IP_TIMEOUT = 10.0


def existing_netns(runner: CommandRunner) -> list[str]:
    out = runner.run(["ip", "netns", "list"], timeout=IP_TIMEOUT).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _ip(runner: CommandRunner, *args: str) -> None:
    runner.run(["ip", *args], timeout=IP_TIMEOUT).checked()


def create_lan(runner: CommandRunner) -> None:
    _ip(runner, "netns", "add", LAN_NETNS)
    _ip(runner, "-n", LAN_NETNS, "link", "set", "lo", "up")
    _ip(runner, "-n", LAN_NETNS, "link", "add", "br0", "type", "bridge")
    _ip(runner, "-n", LAN_NETNS, "link", "set", "br0", "up")


def create_host(runner: CommandRunner, name: str, index: int) -> None:
    """Namespace ``vmha-<name>`` with eth0 = ``10.99.0.<index>/24`` on the lab bridge."""
    ns = node_netns(name)
    _ip(runner, "netns", "add", ns)
    # the host end is created inside the new namespace straight away, so no interface
    # of ours ever appears in the machine's own namespace under a name that could clash
    _ip(runner, "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"v-{name}", "netns", LAN_NETNS)
    _ip(runner, "-n", LAN_NETNS, "link", "set", f"v-{name}", "master", "br0", "up")
    _ip(runner, "-n", ns, "addr", "add", f"{node_address(index)}/24", "dev", "eth0")
    _ip(runner, "-n", ns, "link", "set", "eth0", "up")
    _ip(runner, "-n", ns, "link", "set", "lo", "up")
    # the guests' bridge: libvirt plugs each guest's tap into it; not connected to eth0, so
    # guest traffic stays between a host and its own guests
    _ip(runner, "-n", ns, "link", "add", GUEST_BRIDGE, "type", "bridge")
    _ip(runner, "-n", ns, "addr", "add", f"{GUEST_SUBNET}.1/24", "dev", GUEST_BRIDGE)
    _ip(runner, "-n", ns, "link", "set", GUEST_BRIDGE, "up")


def delete(runner: CommandRunner, names: list[str]) -> list[str]:
    """Delete the namespaces in ``names`` that exist; returns the ones that could not be."""
    present = set(existing_netns(runner))
    failed = []
    for ns in names:
        if ns in present:
            done = runner.run(["ip", "netns", "del", ns], timeout=IP_TIMEOUT)
            if not done.ok:
                failed.append(ns)
    return failed
