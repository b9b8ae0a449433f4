"""The private files of one lab host: what it sees as /etc/corosync, /etc/libvirt, ...

A host shares the machine's filesystem except for the directories below, which the host's
init bind-mounts from ``run/nodes/<name>/`` (``etc/libvirt`` -> ``etc-libvirt``).  Two
libvirtd on one machine need their own config, state and run directories and distinct
host UUIDs, or they fight over each other's domains and migration refuses "to itself".
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil

from vmha.lab import events
from vmha.lab.config import (
    FENCE_AGENT_PATH,
    HEALTH_ATTRIBUTE,
    LAB_POOL,
    LAB_POOL_DIR,
    PRIORITY_FENCING_DELAY,
    LabConfig,
    fence_delay_map,
    host_uuid,
    node_address,
)
from vmha.ocf.runner import CommandRunner

# host paths bind-mounted from the node directory, in mount order
BIND_DIRS = (
    "etc/corosync",
    "var/lib/corosync",
    "var/log/corosync",
    "var/lib/pacemaker",
    "var/log/pacemaker",
    "etc/libvirt",
    "var/lib/libvirt",
    "var/log/libvirt",
    "var/cache/libvirt",
)
BIND_FILES = ("etc/hosts",)
PCMK_DIRS = ("cib", "pengine", "blackbox", "cores")
QEMU_USER = "libvirt-qemu"  # Debian's


def bind_source(node_dir: str, target: str) -> str:
    return os.path.join(node_dir, target.replace("/", "-"))


def hacluster_ids() -> tuple[int, int]:
    return pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid


def qemu_ids() -> tuple[int, int]:
    return pwd.getpwnam(QEMU_USER).pw_uid, grp.getgrnam(QEMU_USER).gr_gid


def _chown_hacluster(path: str, mode: int) -> None:
    os.chown(path, *hacluster_ids())
    os.chmod(path, mode)


def corosync_conf(cfg: LabConfig) -> str:
    nodes = "".join(
        f"    node {{\n        name: {name}\n        nodeid: {i}\n        ring0_addr: {node_address(i)}\n    }}\n"
        for i, name in enumerate(cfg.node_names, start=1)
    )
    # two_node only for exactly two hosts: it implies wait_for_all and lets one survivor keep
    # quorum; with three or more, ordinary majority quorum is what users run
    two_node = "    two_node: 1\n" if cfg.nodes == 2 else ""
    return (
        "totem {\n    version: 2\n    cluster_name: vmhalab\n    transport: knet\n"
        "    crypto_cipher: none\n    crypto_hash: none\n"
        f"    token: {cfg.token_ms}\n}}\n"
        "logging {\n    to_stderr: no\n    to_syslog: no\n    to_logfile: yes\n"
        "    logfile: /var/log/corosync/corosync.log\n    timestamp: on\n}\n"
        f"quorum {{\n    provider: corosync_votequorum\n{two_node}}}\n"
        f"nodelist {{\n{nodes}}}\n"
    )


def hosts_file(cfg: LabConfig) -> str:
    with open("/etc/hosts") as f:
        base = f.read()
    # %n in the migration URIs is a node name: every host must resolve its peers
    lab = "".join(f"{node_address(i)} {n}\n" for i, n in enumerate(cfg.node_names, start=1))
    return base.rstrip("\n") + "\n# vmha lab\n" + lab


def libvirtd_conf(index: int) -> str:
    return (
        "# vmha lab: written from scratch (nothing of the machine's own libvirt)\n"
        "# migration peers talk plain TCP on the lab address only\n"
        "listen_tls = 0\nlisten_tcp = 1\n"
        f'listen_addr = "{node_address(index)}"\nauth_tcp = "none"\n'
        'unix_sock_group = "root"\nunix_sock_rw_perms = "0700"\nunix_sock_ro_perms = "0777"\n'
        'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
        f'host_uuid = "{host_uuid(index)}"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
    )


def qemu_conf(index: int) -> str:
    return (
        "# vmha lab: written from scratch (nothing of the machine's own libvirt)\n"
        f'user = "{QEMU_USER}"\ngroup = "{QEMU_USER}"\n'
        "# no cgroup controllers are delegated inside a namespace host\n"
        "cgroup_controllers = [ ]\n"
        "# the host's /dev as it is (its /dev/kvm is hidden: see nodeinit): a private /dev\n"
        "# per QEMU would try to carry that mount over and fail\n"
        "namespaces = [ ]\n"
        f'migration_address = "{node_address(index)}"\n'
        f'migration_host = "{node_address(index)}"\n'
        "# disk leases: virtlockd (qemu-lockd.conf), so a disk is written by one QEMU at a time\n"
        'lock_manager = "lockd"\n'
    )


def qemu_lockd_conf(lease_dir: str) -> str:
    """Every file or block disk gets a lease, in a lockspace every host shares (see
    vmha.lab.storage for why it is beside the storage rather than on a host's path)."""
    return (
        "# vmha lab: leases for every disk, in the lockspace all the lab's hosts share\n"
        "auto_disk_leases = 1\n"
        "require_lease_for_disks = 1\n"
        f'file_lockspace_dir = "{lease_dir}"\n'
    )


def _mkdir(path: str, mode: int, owner: tuple[int, int] = (0, 0)) -> None:
    os.makedirs(path, exist_ok=True)
    os.chown(path, *owner)
    os.chmod(path, mode)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _libvirt_tree(node_dir: str, index: int, qemu_caps: str, lease_dir: str) -> None:
    """The host's /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt,
    built from nothing: copying the machine's would carry its live state along (a running
    guest's monitor socket cannot even be copied) and its configuration with it."""
    qemu = qemu_ids()
    etc = bind_source(node_dir, "etc/libvirt")
    _mkdir(etc, 0o755)
    _write(os.path.join(etc, "libvirtd.conf"), libvirtd_conf(index))
    _write(os.path.join(etc, "qemu.conf"), qemu_conf(index), 0o600)
    _write(os.path.join(etc, "qemu-lockd.conf"), qemu_lockd_conf(lease_dir))
    _write(os.path.join(etc, "virtlogd.conf"), "# vmha lab: the defaults\n")
    _write(os.path.join(etc, "virtlockd.conf"), "# vmha lab: the defaults\n")
    _write(os.path.join(etc, "libvirt.conf"), 'uri_default = "qemu:///system"\n')
    for sub in ("qemu", "qemu/autostart", "qemu/networks", "qemu/networks/autostart", "storage/autostart"):
        _mkdir(os.path.join(etc, sub), 0o755)
    # the host's storage pool, started by libvirtd itself (autostart); nodeinit mounts its tmpfs
    storage = os.path.join(etc, "storage")
    _write(
        os.path.join(storage, f"{LAB_POOL}.xml"),
        f"<pool type='dir'><name>{LAB_POOL}</name><target><path>{LAB_POOL_DIR}</path></target></pool>\n",
        0o600,
    )
    os.symlink(f"../{LAB_POOL}.xml", os.path.join(storage, "autostart", f"{LAB_POOL}.xml"))

    lib = bind_source(node_dir, "var/lib/libvirt")
    _mkdir(lib, 0o755)
    # the Debian package's owners and modes: QEMU (libvirt-qemu) reaches its channel sockets
    for sub in ("qemu", "qemu/channel", "qemu/channel/target"):
        _mkdir(os.path.join(lib, sub), 0o750, qemu)
    _mkdir(os.path.join(lib, LAB_POOL_DIR[len("/var/lib/libvirt/") :]), 0o711)

    cache = bind_source(node_dir, "var/cache/libvirt")
    _mkdir(cache, 0o711)
    _mkdir(os.path.join(cache, "qemu"), 0o711)
    if os.path.isdir(qemu_caps):
        shutil.copytree(qemu_caps, os.path.join(cache, "qemu", "capabilities"), dirs_exist_ok=True)

    logs = bind_source(node_dir, "var/log/libvirt")
    _mkdir(logs, 0o755)
    _mkdir(os.path.join(logs, "qemu"), 0o755)


def seed_cib(runner: CommandRunner, path: str, cfg: LabConfig) -> None:
    """An initial CIB: short dc-deadtime (a node is online in ~5 s instead of ~22 s),
    fencing on with the lab's fence device, the fencing delays that settle a partition
    (vmha.lab.partition), and a stickiness default (pcs 0.11 ``resource
    move`` refuses without one)."""
    empty = runner.run(["cibadmin", "--empty"], timeout=30).checked()
    with open(path, "w") as f:
        f.write(empty.stdout)
    env = {"CIB_file": path}
    # partition-safe fencing (vmha.lab.partition): the side running more VMs wins the race
    settings = [("dc-deadtime", "2s"), ("stonith-enabled", "true")]
    if cfg.fencing_delays:
        settings.append(("priority-fencing-delay", PRIORITY_FENCING_DELAY))
    for name, value in settings:
        argv = ["crm_attribute", "--type", "crm_config", "--name", name, "--update", value]
        runner.run(argv, timeout=30, env_extend=env).checked()
    runner.run(["pcs", "-f", path, "resource", "defaults", "update", "resource-stickiness=100"], timeout=60).checked()
    hosts = " ".join(cfg.node_names)
    fence = ["pcs", "-f", path, "stonith", "create", "fence-lab", os.path.basename(FENCE_AGENT_PATH)]
    fence += [f"pcmk_host_list={hosts}", "pcmk_host_check=static-list"]
    if cfg.nodes == 2 and cfg.fencing_delays:  # the tie-breaker of an even split; a majority needs none
        fence.append(f"pcmk_delay_base={fence_delay_map(cfg.node_names)}")
    fence += ["op", "monitor", "interval=60s"]
    runner.run(fence, timeout=60).checked()
    # the events the scenarios time themselves by (vmha.lab.events)
    alerts = events.alert_xml(cfg.paths.alert_agent, cfg.paths.events_file, [HEALTH_ATTRIBUTE])
    argv = ["cibadmin", "--create", "--scope", "configuration", "--xml-text", alerts]
    runner.run(argv, timeout=30, env_extend=env).checked()


def prepare(cfg: LabConfig, name: str, index: int, cib: str) -> str:
    """Fresh private tree for host ``name``; ``cib`` is the seeded CIB to start from."""
    node_dir = cfg.paths.node_dir(name)
    if os.path.exists(node_dir):
        shutil.rmtree(node_dir)
    os.makedirs(node_dir)
    for target in BIND_DIRS:
        if not target.endswith("libvirt"):
            os.makedirs(bind_source(node_dir, target))
    _libvirt_tree(node_dir, index, cfg.paths.qemu_caps_dir, cfg.paths.lease_dir)
    pcmk = bind_source(node_dir, "var/lib/pacemaker")
    for sub in PCMK_DIRS:
        os.makedirs(os.path.join(pcmk, sub))
        _chown_hacluster(os.path.join(pcmk, sub), 0o750)
    _chown_hacluster(pcmk, 0o750)
    logs = bind_source(node_dir, "var/log/pacemaker")
    os.makedirs(os.path.join(logs, "bundles"))
    _chown_hacluster(logs, 0o770)
    cib_path = os.path.join(pcmk, "cib", "cib.xml")
    shutil.copyfile(cib, cib_path)
    _chown_hacluster(cib_path, 0o600)
    with open(os.path.join(bind_source(node_dir, "etc/corosync"), "corosync.conf"), "w") as f:
        f.write(corosync_conf(cfg))
    with open(bind_source(node_dir, "etc/hosts"), "w") as f:
        f.write(hosts_file(cfg))
    return node_dir
