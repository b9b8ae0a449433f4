"""Where the lab keeps its files, and how hosts are named and addressed.

Everything the lab owns lives under one directory (``/var/lib/vmha/lab``): the cached guest
image, and a ``run/`` tree for the current lab (node state, sockets, logs, state file).  The
power switch socket is there rather than under /run because every host has a private /run,
and the fence agent (run by pacemaker-fenced inside a host) must still reach it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

LAB_DIR = "/var/lib/vmha/lab"
SUBNET = "10.99.0"  # /24, only ever configured inside the lab's own namespaces
NETNS_PREFIX = "vmha-"
LAN_NETNS = NETNS_PREFIX + "lan"
FENCE_AGENT_PATH = "/usr/sbin/fence_vmhalab"
# the guests' own network: a bridge of this name and address inside every host's namespace
# (the same on every host, so a migrated guest stays reachable from whichever host runs it)
GUEST_BRIDGE = "vmbr0"
GUEST_SUBNET = "192.168.77"  # /24; .1 is the host's end of the bridge
TOKEN_MS = 1000
# Every host has one small storage pool (a dir pool on its own tmpfs), so HypervisorHealth
# has storage to watch and a scenario can fill it: a host whose storage runs out.
LAB_POOL = "lab-pool"
LAB_POOL_DIR = "/var/lib/libvirt/lab-pool"
LAB_POOL_MIB = 16
HEALTH_ATTRIBUTE = "#health-vmha"
# Shared storage (see vmha.lab.storage): every VM's disk is a raw file in the machine's
# ``run/storage``, which every host reaches through its own FUSE mount (bindfs) at the same
# path, ``run/shared``, so one host's path can be cut or hung without touching the others'.
DISK_MIB = 8
# partition-safe fencing (vmha.lab.partition): fencing a lost host whose VMs' priority adds
# up to more is delayed, so the side running more VMs wins; an even split goes to ha1
PRIORITY_FENCING_DELAY = "3s"
TIE_DELAY = "1s"
VM_PRIORITY = 10


def fence_delay_map(hosts: list[str]) -> str:
    """``pcmk_delay_base`` of the lab's one fence device: the first host is fenced last."""
    return ";".join(f"{h}:{TIE_DELAY if i == 0 else '0s'}" for i, h in enumerate(hosts))


# what a host's init writes: the PID of its storage path (bindfs), in its private /run
STORAGE_PID_FILE = "/run/vmha-storage.pid"
AGENTS = {"vmha": "ocf:vmha:VirtualMachine", "heartbeat": "ocf:heartbeat:VirtualDomain"}
MAX_NODES = 8


def node_name(index: int) -> str:
    """Host names are ha1, ha2, ... (index from 1), as corosync and pcs see them."""
    return f"ha{index}"


def node_address(index: int) -> str:
    return f"{SUBNET}.{index}"


def guest_address(vm: str) -> str | None:
    """The fixed address of lab VM ``vmN`` (``GUEST_SUBNET.(10+N)``); None for other names."""
    digits = vm.removeprefix("vm")
    if vm.startswith("vm") and digits.isdigit() and 1 <= int(digits) <= 200:
        return f"{GUEST_SUBNET}.{10 + int(digits)}"
    return None


# written by a host's init into its private /run once mounted: a /proc/PID/root/run without
# it is still the machine's /run (and its libvirt socket), never to be used
HOST_MARKER = "/run/vmha-lab-host"


def node_index(name: str) -> int:
    """ha3 -> 3 (the inverse of node_name)."""
    return int(name.removeprefix("ha"))


def host_uuid(index: int) -> str:
    """The host UUID the lab's libvirtd on host ``index`` reports (capabilities <host><uuid>)."""
    return f"00000000-0000-4000-8000-{index:012d}"


def node_netns(name: str) -> str:
    return NETNS_PREFIX + name


@dataclass(frozen=True)
class LabPaths:
    root: str = LAB_DIR

    @property
    def image_dir(self) -> str:
        return os.path.join(self.root, "image")

    @property
    def run_dir(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def state_file(self) -> str:
        return os.path.join(self.run_dir, "state.json")

    @property
    def power_socket(self) -> str:
        return os.path.join(self.run_dir, "power.sock")

    @property
    def vm_dir(self) -> str:
        return os.path.join(self.run_dir, "vms")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.run_dir, "log")

    @property
    def alert_agent(self) -> str:
        return os.path.join(self.run_dir, "alert.sh")

    @property
    def events_file(self) -> str:
        return os.path.join(self.log_dir, "events.tsv")

    @property
    def qemu_caps_dir(self) -> str:
        """QEMU capabilities as libvirtd probed them, kept with the image between labs (a
        probe costs every host ~2 s of CPU at its first VM start; libvirtd still checks the
        copy against the QEMU binary and the host and probes again if it is stale)."""
        return os.path.join(self.image_dir, "qemu-capabilities")

    @property
    def storage_dir(self) -> str:
        """The shared storage itself: the VMs' disk images, on the machine's filesystem."""
        return os.path.join(self.run_dir, "storage")

    @property
    def shared_dir(self) -> str:
        """Where every host mounts its own path to ``storage_dir`` (empty on the machine)."""
        return os.path.join(self.run_dir, "shared")

    @property
    def lease_dir(self) -> str:
        """virtlockd's lockspace: a directory every host's virtlockd locks in (they share the
        machine's kernel, so a lock one takes is seen by all), beside the storage rather than
        through a host's FUSE path (see vmha.lab.storage for why)."""
        return os.path.join(self.run_dir, "leases")

    def disk_path(self, vm: str) -> str:
        """The path of ``vm``'s disk as every host's QEMU opens it."""
        return os.path.join(self.shared_dir, f"{vm}.img")

    def disk_image(self, vm: str) -> str:
        """The same disk as the machine sees it, under no host's path."""
        return os.path.join(self.storage_dir, f"{vm}.img")

    def node_dir(self, name: str) -> str:
        return os.path.join(self.run_dir, "nodes", name)


@dataclass(frozen=True)
class LabConfig:
    nodes: int = 2
    agent: str = "vmha"
    vms: int = 2
    token_ms: int = TOKEN_MS
    paths: LabPaths = field(default_factory=LabPaths)
    # the fencing delays that settle a partition (vmha.lab.partition); a benchmark of the
    # agents' own speed turns them off: they add PRIORITY_FENCING_DELAY to a failover
    fencing_delays: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"--nodes must be between 1 and {MAX_NODES}")
        if self.agent not in AGENTS:
            raise ValueError(f"--agent must be one of {', '.join(AGENTS)}")
        if self.vms < 0:
            raise ValueError("--vms must not be negative")

    @property
    def node_names(self) -> list[str]:
        return [node_name(i) for i in range(1, self.nodes + 1)]

    @property
    def agent_spec(self) -> str:
        return AGENTS[self.agent]
