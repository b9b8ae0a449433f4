"""VirtualMachine's parameters: every VirtualDomain parameter under its own name and meaning,
plus vmha's own.  Where VirtualDomain's default is a known defect, the longdesc says so.
"""

from __future__ import annotations

import re

from vmha.agent_common import hypervisor_param
from vmha.ocf.params import Param, ParamType, Value
from vmha.verdicts.guest_command import param_check
from vmha.virt.domain import SHUTDOWN_MODES

S, INT, B, SEL = ParamType.STRING, ParamType.INTEGER, ParamType.BOOLEAN, ParamType.SELECT

_USER = re.compile(r"[a-z_][-a-z0-9_]*\Z")


def _absolute_path(value: Value) -> str | None:
    text = str(value)
    if not text.startswith("/"):
        return f"{text!r} is not an absolute path"
    if "\0" in text or "\n" in text:
        return "contains a control character"
    return None


def _absolute_paths(value: Value) -> str | None:
    for word in str(value).split():
        problem = _absolute_path(word)
        if problem:
            return problem
    return None


def _shutdown_modes(value: Value) -> str | None:
    modes = [m.strip() for m in str(value).split(",") if m.strip()]
    bad = [m for m in modes if m not in SHUTDOWN_MODES]
    if bad:
        return f"unknown mode(s) {', '.join(bad)}; use one or more of {', '.join(SHUTDOWN_MODES)}"
    return None


def _migration_user(value: Value) -> str | None:
    return None if _USER.match(str(value)) else f"{value!r} is not a valid user name"


def _transport(value: Value) -> str | None:
    return None if re.fullmatch(r"[a-z0-9]+", str(value)) else f"{value!r} is not a transport name (ssh, tcp, tls, ...)"


def _suffix(value: Value) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9.-]+", str(value)) else f"{value!r} is not a host-name suffix"


PARAMS: tuple[Param, ...] = (
    Param(
        "config",
        S,
        "Domain XML file",
        "Absolute path to the libvirt domain XML of this VM. The domain name and UUID are read "
        "from it. It must be readable on every node that may run the VM.",
        required=True,
        unique_group="config",
        check=_absolute_path,
    ),
    hypervisor_param(
        "libvirt connection URI of the local hypervisor. VirtualDomain defaults to whatever "
        "'virsh uri' answers, which hangs or fails when libvirtd is down (resource-agents #732); "
        "vmha defaults to qemu:///system."
    ),
    Param(
        "force_stop",
        B,
        "Always force off",
        "Stop the VM with an immediate destroy instead of a graceful shutdown first.",
        default=False,
        reloadable=True,
    ),
    Param(
        "shutdown_mode",
        S,
        "Graceful shutdown method(s)",
        "Comma-separated list of acpi, agent, initctl, signal, paravirt: how the guest is asked "
        "to shut down (libvirt tries them in its own order). Empty lets the hypervisor choose. "
        "VirtualDomain reads this parameter under a wrong variable name, so it has never taken "
        "effect there; here it does.",
        default="",
        reloadable=True,
        check=_shutdown_modes,
    ),
    Param(
        "shutdown_timeout",
        INT,
        "Graceful shutdown wait (s)",
        "Seconds to wait for a graceful shutdown before the VM is forced off. 0 waits until "
        "shortly before the stop operation's timeout, keeping enough time to force it off.",
        default=0,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "migration_transport",
        S,
        "Remote hypervisor transport",
        "Transport inserted into the hypervisor URI to reach the migration target "
        "(e.g. ssh gives qemu+ssh://<target>/system). Ignored when remoteuri is set.",
        default="",
        reloadable=True,
        check=_transport,
    ),
    Param(
        "migration_user",
        S,
        "Remote hypervisor user",
        "User name put in the remote hypervisor URI (user@target). Ignored when remoteuri is set.",
        default="",
        reloadable=True,
        check=_migration_user,
    ),
    Param(
        "migration_network_suffix",
        S,
        "Migration network suffix",
        "Suffix added to the target's node name (before its first dot) to reach it over a "
        "dedicated migration network, for the remote URI and the QEMU migration URI.",
        default="",
        reloadable=True,
        check=_suffix,
    ),
    Param(
        "migrateport",
        INT,
        "QEMU migration port",
        "Port of the QEMU migration stream when the migration URI is built from "
        "migration_network_suffix. VirtualDomain picks a random port on every call, which can "
        "collide; 0 (vmha's default) lets libvirt choose a free one from its own range.",
        default=0,
        minimum=0,
        maximum=65535,
        reloadable=True,
        advanced=True,
    ),
    Param(
        "migrateuri",
        S,
        "QEMU migration URI",
        "URI for the migration data stream, e.g. tcp://%n-mig; %n is replaced by the target "
        "node's name. Overrides migration_network_suffix and --migrateuri in migrate_options.",
        default="",
        reloadable=True,
    ),
    Param(
        "remoteuri",
        S,
        "Remote hypervisor URI",
        "libvirt URI of the target hypervisor, e.g. qemu+tcp://%n/system; %n is replaced by the "
        "target node's name. Overrides migration_transport, migration_user and the suffix.",
        default="",
        reloadable=True,
    ),
    Param(
        "migrate_options",
        S,
        "Extra migration options",
        "virsh-migrate-style options: --p2p --tunnelled --compressed --auto-converge --postcopy "
        "--abort-on-error --unsafe --tls --parallel --parallel-connections=N --copy-storage-all "
        "--copy-storage-inc --change-protection --migrateuri=URI --listen-address=ADDR "
        "--bandwidth=MiB/s. Nothing is passed to a shell; an option not in this list is refused "
        "by validate-all.",
        default="",
        reloadable=True,
    ),
    Param(
        "migration_downtime",
        INT,
        "Maximum migration downtime (ms)",
        "Largest pause (milliseconds) allowed at the end of a live migration; 0 keeps libvirt's default.",
        default=0,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "migration_speed",
        INT,
        "Migration bandwidth (MiB/s)",
        "Bandwidth limit of the migration stream in MiB/s; 0 means unlimited.",
        default=0,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "migration_auto_converge",
        B,
        "Auto-converge migration",
        "Throttle the guest's vCPUs when memory is dirtied faster than it can be copied, so the migration finishes.",
        default=False,
        reloadable=True,
    ),
    Param(
        "migration_postcopy",
        B,
        "Allow post-copy",
        "Switch a live migration that has not converged after migration_postcopy_after seconds "
        "to post-copy (the VM runs on the target while its memory follows). Faster to finish, "
        "but a network failure during post-copy loses the VM.",
        default=False,
        reloadable=True,
    ),
    Param(
        "migration_postcopy_after",
        INT,
        "Seconds before post-copy",
        "With migration_postcopy, seconds of pre-copy before switching to post-copy.",
        default=10,
        minimum=1,
        reloadable=True,
        advanced=True,
    ),
    Param(
        "monitor_scripts",
        S,
        "Host-side monitor scripts",
        "Space-separated absolute paths of programs run on the host after the domain is found "
        "running (monitor, and start/migrate_from until they pass). Each runs without a shell, "
        "with the OCF environment plus VMHA_DOMAIN_NAME and VMHA_DOMAIN_UUID, and must exit 0.",
        default="",
        reloadable=True,
        check=_absolute_paths,
    ),
    Param(
        "autoset_utilization_cpu",
        B,
        "Publish vCPUs as utilization",
        "Keep the resource's utilization attribute 'cpu' equal to the VM's vCPU count. Written "
        "only when the value changes (VirtualDomain calls crm_resource on every monitor).",
        default=True,
        reloadable=True,
    ),
    Param(
        "autoset_utilization_host_memory",
        B,
        "Publish memory as host_memory",
        "Keep the utilization attribute 'host_memory' equal to the VM's maximum memory in MiB.",
        default=True,
        reloadable=True,
    ),
    Param(
        "autoset_utilization_hv_memory",
        B,
        "Publish memory as hv_memory",
        "Keep the utilization attribute 'hv_memory' equal to the VM's maximum memory in MiB.",
        default=True,
        reloadable=True,
    ),
    Param(
        "unset_utilization_cpu",
        B,
        "Remove cpu utilization",
        "Remove the utilization attribute 'cpu' (when autoset_utilization_cpu is off).",
        default=False,
        reloadable=True,
        advanced=True,
    ),
    Param(
        "unset_utilization_host_memory",
        B,
        "Remove host_memory utilization",
        "Remove the utilization attribute 'host_memory' (when its autoset is off).",
        default=False,
        reloadable=True,
        advanced=True,
    ),
    Param(
        "unset_utilization_hv_memory",
        B,
        "Remove hv_memory utilization",
        "Remove the utilization attribute 'hv_memory' (when its autoset is off).",
        default=False,
        reloadable=True,
        advanced=True,
    ),
    Param(
        "save_config_on_stop",
        B,
        "Save the live config",
        "Write the domain's current persistent XML (libvirt's inactive definition, with "
        "security info) back to config on stop and migration, and on monitor when it changed. "
        "Written atomically, keeping the file's mode.",
        default=False,
        reloadable=True,
    ),
    Param(
        "sync_config_on_stop",
        B,
        "Sync the saved config with csync2",
        "Implies save_config_on_stop; after saving, run 'csync2 -x <config>'.",
        default=False,
        reloadable=True,
    ),
    Param(
        "snapshot",
        S,
        "Save/restore directory",
        "Directory where stop saves the VM's memory state (<name>.state) instead of shutting it "
        "down, and from which start restores it. Incompatible with force_stop.",
        default="",
        reloadable=True,
        check=_absolute_path,
    ),
    Param(
        "backingfile",
        S,
        "qcow2 backing file",
        "Run the VM on a qcow2 overlay of this image: the overlay is <config without "
        "extension>.qcow2 and the domain XML must use it as its disk. Needs qemu-img.",
        default="",
        check=_absolute_path,
    ),
    Param(
        "stateless",
        B,
        "Fresh overlay at every start",
        "With backingfile, recreate the overlay at every start (all changes are discarded).",
        default=False,
    ),
    Param(
        "copyindirs",
        S,
        "Directories copied into a stateless guest",
        "VirtualDomain copies these directories into the guest with virt-copy-in (libguestfs) "
        "before a stateless start.",
        default="",
        unsupported="it needs libguestfs on every host and edits the guest's disk offline; "
        "bake the files into backingfile instead",
    ),
    Param(
        "start_resources",
        B,
        "Start pools and networks",
        "Before start and migration, start (and refresh) the libvirt storage pools and networks "
        "the domain XML names, on this host or the migration target.",
        default=False,
        reloadable=True,
    ),
    Param(
        "persistent",
        B,
        "Define the domain persistently",
        "Start the domain from a persistent definition (with autostart turned off) instead of a "
        "transient one; migrations carry the definition to the target and remove it here. "
        "Transient (the default, as in VirtualDomain) means no host can start the VM by itself "
        "after a reboot.",
        default=False,
    ),
    Param(
        "on_io_error",
        SEL,
        "VM paused by an I/O error",
        "What the monitor reports when the VM is paused because of a disk I/O error: 'fail' "
        "(1, Pacemaker recovers it, possibly on another host) or 'degraded' (190, it is shown "
        "and left alone). VirtualDomain reports such a VM as healthy.",
        default="fail",
        options=("fail", "degraded"),
        reloadable=True,
    ),
    Param(
        "guest_agent_timeout",
        INT,
        "Guest agent deadline (s)",
        "Seconds one guest-agent check (monitor depth 10 and 20) may take.",
        default=5,
        minimum=2,
        reloadable=True,
    ),
    Param(
        "guest_boot_grace",
        INT,
        "Guest boot grace (s)",
        "Seconds after the VM starts (or its guest reboots) during which a silent guest agent "
        "is not counted against it: the guest is still booting.",
        default=300,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "guest_misses",
        INT,
        "Missed checks before failure",
        "Consecutive monitors (depth 10/20) without an answer from the guest agent before the "
        "guest counts as not alive; one missed ping is never a failure.",
        default=3,
        minimum=1,
        reloadable=True,
    ),
    Param(
        "on_guest_failure",
        SEL,
        "When the guest is not alive",
        "What the monitor reports once the guest agent stayed silent guest_misses times: "
        "'restart' (1: Pacemaker restarts the VM, or moves it; the stop that follows forces "
        "the guest off at once, with no shutdown request and no snapshot, as a hung guest "
        "cannot act on either), 'degraded' (190: shown, left alone) or 'ignore' (0, with a "
        "log line).",
        default="restart",
        options=("restart", "degraded", "ignore"),
        reloadable=True,
    ),
    Param(
        "guest_check_command",
        S,
        "In-guest check (depth 20)",
        "A command run inside the guest through the guest agent by the depth-20 monitor, e.g. "
        "'/usr/bin/pg_isready -q' or '/bin/findmnt /srv'. Split into words like a shell would, "
        "but never run by one: the first word is an absolute program path, and nothing a "
        "shell would read (;&|<>$`*?[](){}~!# and backslashes) is accepted, as for "
        "GuestService's commands. Exit 0 is healthy; "
        "anything else fails the monitor (1). Empty: depth 20 is the depth-10 ping.",
        default="",
        reloadable=True,
        check=param_check("guest_check_command"),
    ),
    Param(
        "peer_check",
        B,
        "Look for the VM on the peers before start",
        "Before start, each other node that is a cluster member is asked, read-only and within "
        "peer_check_timeout, whether it runs this domain (by UUID, else name); start is refused "
        "if one does. This guards against a VM started by hand, or left behind by a start or "
        "migration that completed after the cluster gave up on it. On by default wherever the "
        "resource says how to reach the peers' libvirt: peer_check_uri, else the URI live "
        "migration uses (remoteuri, or the hypervisor URI with migration_transport, "
        "migration_user and migration_network_suffix). With none of these set there is no "
        "peer to ask and the check does not run. It does not guard against a peer that cannot "
        "be reached (the start goes ahead: fencing must cover that case), nor against the same "
        "disks used by a domain with another name and UUID.",
        default=True,
        reloadable=True,
    ),
    Param(
        "peer_check_uri",
        S,
        "Peer libvirt URI template for the peer check",
        "libvirt URI template of the other hosts for the peer check, e.g. "
        "qemu+ssh://%n/system; %n is replaced by each other cluster node's name. Empty: the "
        "URI live migration uses (see peer_check).",
        default="",
        reloadable=True,
    ),
    Param(
        "peer_check_timeout",
        INT,
        "Peer check deadline (s)",
        "Seconds the peer check may take in all, however many peers; a peer that has not "
        "answered by then is skipped with a warning.",
        default=3,
        minimum=1,
        reloadable=True,
        advanced=True,
    ),
    Param(
        "require_disk_leases",
        B,
        "Refuse to start unless libvirt leases every disk",
        "Disk leases are the guard that holds when the cluster is wrong about where a VM runs "
        "(a VM started by hand, a start that completed late, a split brain): libvirt's lock "
        'manager (lock_manager = "lockd" or "sanlock" in /etc/libvirt/qemu.conf, with its '
        "lockspace on storage every host shares) refuses to start QEMU on a disk another host's "
        "QEMU holds, and start then fails (1) naming the disk, so Pacemaker tries another node. "
        "validate-all and start warn when a writable disk of the domain has no lease (no lock "
        "manager, automatic leases off, or a network disk, which libvirt does not lease). "
        "With this set, such a start fails instead (5: not installed on this node). Needs a "
        "local hypervisor URI: a remote host's libvirt configuration cannot be read.",
        default=False,
        reloadable=True,
    ),
)

RELOADABLE = frozenset(p.name for p in PARAMS if p.reloadable)
