"""HypervisorHealth's parameters: one switch and its thresholds per check."""

from __future__ import annotations

from vmha.agent_common import hypervisor_param
from vmha.ocf.params import Param, ParamType, Value

S, INT, B, SEL = ParamType.STRING, ParamType.INTEGER, ParamType.BOOLEAN, ParamType.SELECT


def _health_attribute(value: Value) -> str | None:
    text = str(value)
    if not text.startswith("#health") or any(ch.isspace() or not ch.isprintable() for ch in text):
        return f"{text!r} must start with #health (Pacemaker only reads such attributes as node health)"
    return None


def _names(value: Value) -> str | None:
    from vmha.hypervisor_health.host_facts import valid_interface_name

    bad = [w for w in str(value).split() if not valid_interface_name(w)]
    return f"not interface names: {' '.join(bad)}" if bad else None


def _pool_names(value: Value) -> str | None:
    bad = [w for w in str(value).split() if not w.isprintable() or "/" in w]
    return f"not pool names: {' '.join(bad)}" if bad else None


def _absolute(value: Value) -> str | None:
    return None if str(value).startswith("/") else f"{value!r} is not an absolute path"


def _directories(value: Value) -> str | None:
    bad = [w for w in str(value).split() if not w.startswith("/") or not w.isprintable()]
    return f"not absolute paths: {' '.join(bad)}" if bad else None


PARAMS: tuple[Param, ...] = (
    hypervisor_param("libvirt connection URI of the local hypervisor, as for VirtualMachine.", reloadable=True),
    Param(
        "health_attribute",
        S,
        "Node health attribute",
        "Name of the node attribute this agent writes (green, yellow or red) through attrd. "
        "Pacemaker's node-health-strategy reads every attribute whose name starts with #health.",
        default="#health-vmha",
        check=_health_attribute,
    ),
    Param(
        "check_hypervisor",
        B,
        "Check that libvirtd answers",
        "Connect to the hypervisor and ask for its version and size; a hypervisor that does not "
        "answer in time makes the host yellow, and hypervisor_failure once it has not answered "
        "for hypervisor_grace seconds.",
        default=True,
        reloadable=True,
    ),
    Param(
        "hypervisor_failure",
        SEL,
        "Health when libvirtd does not answer",
        "red moves the VMs away (with node-health-strategy=migrate-on-red); yellow only shows it.",
        default="red",
        options=("red", "yellow"),
        reloadable=True,
    ),
    Param(
        "hypervisor_grace",
        INT,
        "Seconds libvirtd may not answer before hypervisor_failure applies",
        "Until then the host is yellow. libvirtd restarts within seconds after a crash (systemd), "
        "and the VMs' QEMU processes run on without it; a live migration cannot, so turning the "
        "host red at once restarts the VMs elsewhere for an outage that was over by itself. "
        "0 applies hypervisor_failure at the first failed check.",
        default=30,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "check_memory",
        B,
        "Check memory headroom",
        "Compare MemAvailable with what the running domains may still claim (their maximum "
        "memory minus their current memory).",
        default=True,
        reloadable=True,
    ),
    Param(
        "memory_headroom_mib",
        INT,
        "Memory headroom (MiB)",
        "Yellow when MemAvailable minus the running domains' possible growth is below this.",
        default=1024,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "memory_red_mib",
        INT,
        "Critical available memory (MiB)",
        "Red when MemAvailable itself is below this; 0 never makes memory red.",
        default=0,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "check_storage",
        B,
        "Check storage pools",
        "Check that the storage pools are active and have free space.",
        default=True,
        reloadable=True,
    ),
    Param(
        "storage_pools",
        S,
        "Storage pools to check",
        "Space-separated libvirt storage pool names; each must exist and be active (red "
        "otherwise). Empty: every active pool is checked for free space and inactive pools are "
        "ignored.",
        default="",
        reloadable=True,
        check=_pool_names,
    ),
    Param(
        "shared_storage",
        S,
        "Shared storage directories that must answer",
        "Space-separated directories on the storage the VMs' disks live on (an NFS or cluster "
        "filesystem mount, a directory on the LUN's filesystem). At every monitor each gets a "
        "small synchronous write (a file named .vmha-probe.<node> in it) and must complete "
        "it within shared_storage_timeout: a path that fails (a cut link, a read-only or "
        "stale mount) or does not answer (a hung mount) makes the host red, so its VMs are "
        "moved to a host that still reaches the storage (what vSphere calls VM Component "
        "Protection). The probe runs in a thread the monitor does not wait for past the "
        "timeout, so a hung mount cannot hang the agent. Empty: no such check.",
        default="",
        reloadable=True,
        check=_directories,
    ),
    Param(
        "shared_storage_timeout",
        INT,
        "Shared storage probe deadline (s)",
        "Seconds a shared_storage directory has to complete its probe write before the host "
        "is red; also capped by the monitor's own timeout.",
        default=5,
        minimum=1,
        reloadable=True,
        advanced=True,
    ),
    Param(
        "pool_free_yellow_percent",
        INT,
        "Pool free space, yellow (%)",
        "Yellow when a checked pool has less than this percentage of its capacity free.",
        default=10,
        minimum=0,
        maximum=100,
        reloadable=True,
    ),
    Param(
        "pool_free_red_percent",
        INT,
        "Pool free space, red (%)",
        "Red when a checked pool has less than this percentage free; 0 never makes storage red. "
        "A pool shared by every host turns every host red at once: the cluster-wide rule then "
        "keeps them yellow.",
        default=2,
        minimum=0,
        maximum=100,
        reloadable=True,
    ),
    Param(
        "check_interfaces",
        B,
        "Check network interfaces",
        "Check that the host interfaces the VMs use are up (operstate up, or unknown with a "
        "carrier); a missing or down interface makes the host red.",
        default=True,
        reloadable=True,
    ),
    Param(
        "interfaces",
        S,
        "Interfaces to check",
        "Space-separated host interface names (bridges, bonds, NICs). Empty: the bridges and "
        "macvtap parents of the running domains, found in their XML.",
        default="",
        reloadable=True,
        check=_names,
    ),
    Param(
        "check_edac",
        B,
        "Check EDAC memory errors",
        "Watch /sys/devices/system/edac/mc/mc*/ue_count and ce_count: a new uncorrected error "
        "is red, edac_ce_threshold new corrected errors in one monitor interval yellow.",
        default=True,
        reloadable=True,
    ),
    Param(
        "edac_ce_threshold",
        INT,
        "Corrected memory errors per interval",
        "New corrected errors on one memory controller within one monitor interval that make "
        "the host yellow; 0 ignores corrected errors.",
        default=10,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "check_thermal",
        B,
        "Check thermal zones",
        "Compare /sys/class/thermal/thermal_zone*/temp with the zone's trip points: critical "
        "or hot reached is red, passive reached is yellow.",
        default=True,
        reloadable=True,
    ),
    Param(
        "check_disk_errors",
        B,
        "Check disk I/O errors",
        "A disk whose kernel I/O error count (/sys/block/*/device/ioerr_cnt) grows makes the host yellow.",
        default=True,
        reloadable=True,
    ),
    Param(
        "check_md_raid",
        B,
        "Check md RAID",
        "A degraded md array (/sys/block/md*/md/degraded, else /proc/mdstat) makes the host yellow.",
        default=True,
        reloadable=True,
    ),
    Param(
        "counter_hold",
        INT,
        "Hold time of counter findings (s)",
        "How long a colour caused by new EDAC or disk errors is kept after the last increase "
        "(the counters themselves only grow once).",
        default=3600,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "set_utilization",
        B,
        "Publish node utilization",
        "Keep the node's utilization cpu (host CPUs minus reserved_cpus), hv_memory and "
        "host_memory (host MiB minus reserved_memory_mib) in the CIB, for placement-strategy; written only when "
        "a value changes. Kept when the agent stops: capacity is a fact of the host.",
        default=True,
        reloadable=True,
    ),
    Param(
        "reserved_cpus",
        INT,
        "CPUs kept for the host",
        "CPUs not offered to VMs in the node's cpu utilization.",
        default=0,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "reserved_memory_mib",
        INT,
        "Memory kept for the host (MiB)",
        "MiB not offered to VMs in the node's hv_memory and host_memory utilization.",
        default=1024,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "attrd_failures",
        INT,
        "Failed attribute updates before failing",
        "Consecutive monitors that could not write the health attribute before the monitor "
        "fails; until then each failure is logged and retried.",
        default=3,
        minimum=1,
        reloadable=True,
    ),
    Param(
        "libvirt_timeout",
        INT,
        "libvirt deadline (s)",
        "Seconds the libvirt checks may take in one operation (never more than the operation's "
        "timeout leaves after the cluster commands).",
        default=10,
        minimum=1,
        reloadable=True,
    ),
    Param(
        "host_root",
        S,
        "Root of /proc and /sys",
        "Directory under which proc/ and sys/ are read: / on a host; a copy for tests and rehearsals.",
        default="/",
        advanced=True,
        reloadable=True,
        check=_absolute,
    ),
)
