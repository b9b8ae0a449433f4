"""The /proc and /sys readers of HypervisorHealth on fake trees."""

from __future__ import annotations

import os

import pytest
from vmha.hypervisor_health import host_facts as hf
from vmha.verdicts.host_health import LinkState, MdArray, ThermalZone


def put(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_everything_absent_is_nothing(tmp_path):
    root = str(tmp_path)
    assert hf.mem_available_kib(root) is None
    assert hf.link_state("br0", root) is None
    assert hf.edac_counters(root) == {}
    assert hf.disk_io_errors(root) == {}
    assert hf.thermal_zones(root) == []
    assert hf.md_arrays(root) == []


def test_meminfo(tmp_path):
    put(tmp_path, "proc/meminfo", "MemTotal:       24684084 kB\nMemFree: 1 kB\nMemAvailable:   24283088 kB\n")
    assert hf.mem_available_kib(str(tmp_path)) == 24283088


def test_meminfo_without_memavailable(tmp_path):
    put(tmp_path, "proc/meminfo", "MemTotal: 1 kB\nMemAvailable:\n")
    assert hf.mem_available_kib(str(tmp_path)) is None


def test_link_state(tmp_path):
    put(tmp_path, "sys/class/net/br0/operstate", "up\n")
    put(tmp_path, "sys/class/net/br0/carrier", "1\n")
    put(tmp_path, "sys/class/net/vnet0/operstate", "unknown\n")
    put(tmp_path, "sys/class/net/eth1/operstate", "down\n")  # carrier unreadable when down (EINVAL)
    root = str(tmp_path)
    assert hf.link_state("br0", root) == LinkState("up", True)
    assert hf.link_state("vnet0", root) == LinkState("unknown", None)
    assert hf.link_state("eth1", root) == LinkState("down", None)


@pytest.mark.parametrize("name", ["../../etc", "a/b", "..", "", "x" * 16, "br 0"])
def test_link_state_refuses_names_that_are_not_interfaces(tmp_path, name):
    put(tmp_path, "etc/operstate", "up\n")
    assert hf.link_state(name, str(tmp_path / "sys/class/net")) is None
    assert not hf.valid_interface_name(name)


def test_link_state_on_this_host():
    assert hf.link_state("lo") is not None


def test_edac(tmp_path):
    base = "sys/devices/system/edac/mc"
    put(tmp_path, f"{base}/mc0/ce_count", "12\n")
    put(tmp_path, f"{base}/mc0/ue_count", "0\n")
    put(tmp_path, f"{base}/mc1/ce_count", "garbage\n")
    put(tmp_path, f"{base}/mc1/ue_count", "1\n")
    put(tmp_path, f"{base}/power/ce_count", "9\n")  # not a memory controller
    assert hf.edac_counters(str(tmp_path)) == {"mc0/ce": 12, "mc0/ue": 0, "mc1/ue": 1}


def test_disk_io_errors_are_hexadecimal(tmp_path):
    put(tmp_path, "sys/block/sda/device/ioerr_cnt", "0x1a\n")
    put(tmp_path, "sys/block/sdb/device/ioerr_cnt", "0x0\n")
    os.makedirs(tmp_path / "sys/block/vda/device")  # virtio: no counter
    put(tmp_path, "sys/block/sdc/device/ioerr_cnt", "zz\n")
    assert hf.disk_io_errors(str(tmp_path)) == {"sda": 26, "sdb": 0}


def test_thermal_zones(tmp_path):
    z = "sys/class/thermal/thermal_zone0"
    put(tmp_path, f"{z}/type", "x86_pkg_temp\n")
    put(tmp_path, f"{z}/temp", "54000\n")
    put(tmp_path, f"{z}/trip_point_0_type", "passive\n")
    put(tmp_path, f"{z}/trip_point_0_temp", "80000\n")
    put(tmp_path, f"{z}/trip_point_1_type", "critical\n")
    put(tmp_path, f"{z}/trip_point_1_temp", "105000\n")
    put(tmp_path, "sys/class/thermal/thermal_zone1/type", "acpitz\n")  # no readable temp: skipped
    put(tmp_path, "sys/class/thermal/cooling_device0/type", "Fan\n")
    assert hf.thermal_zones(str(tmp_path)) == [
        ThermalZone("thermal_zone0", "x86_pkg_temp", 54000, (("passive", 80000), ("critical", 105000)))
    ]


def test_md_from_sysfs(tmp_path):
    put(tmp_path, "sys/block/md0/md/degraded", "0\n")
    put(tmp_path, "sys/block/md127/md/degraded", "1\n")
    put(tmp_path, "proc/mdstat", "ignored when sysfs answers")
    assert hf.md_arrays(str(tmp_path)) == [MdArray("md0", 0), MdArray("md127", 1)]


MDSTAT = """Personalities : [raid1] [raid6] [raid5] [raid4]
md1 : active raid5 sdd1[3] sdc1[1] sdb1[0]
      2095104 blocks super 1.2 level 5, 512k chunk, algorithm 2 [3/2] [UU_]

md0 : active raid1 sdb2[1] sda2[0]
      1048512 blocks [2/2] [UU]
      bitmap: 0/1 pages [0KB], 65536KB chunk

unused devices: <none>
"""


def test_md_from_mdstat(tmp_path):
    put(tmp_path, "proc/mdstat", MDSTAT)
    assert hf.md_arrays(str(tmp_path)) == [MdArray("md1", 1), MdArray("md0", 0)]


def test_md_mdstat_without_arrays(tmp_path):
    put(tmp_path, "proc/mdstat", "Personalities :\nunused devices: <none>\n")
    assert hf.md_arrays(str(tmp_path)) == []


def test_filesystem_space_of_a_real_directory(tmp_path):
    (tmp_path / "pool").mkdir()
    size, free = hf.filesystem_space("/pool", str(tmp_path), timeout=5)
    st = os.statvfs(tmp_path)
    assert size == st.f_blocks * st.f_frsize and 0 <= free <= size


def test_filesystem_space_of_an_absent_path(tmp_path):
    assert hf.filesystem_space("/no/such/pool", str(tmp_path), timeout=5) is None


def test_filesystem_space_that_hangs_times_out(tmp_path, monkeypatch):
    import threading

    release = threading.Event()

    def hung(_path):
        release.wait(10)
        raise OSError("released")

    monkeypatch.setattr(hf.os, "statvfs", hung)
    try:
        with pytest.raises(TimeoutError, match="did not answer within 0.2s"):
            hf.filesystem_space("/pool", str(tmp_path), timeout=0.2)
    finally:
        release.set()


def test_storage_probe_writes_and_syncs_a_file_of_its_own(tmp_path):
    from vmha.hypervisor_health import host_facts

    assert host_facts.storage_probe(str(tmp_path), "ha1", timeout=2.0) == ""
    probe = tmp_path / ".vmha-probe.ha1"
    assert probe.read_text().strip()
    assert probe.stat().st_mode & 0o777 == 0o600


def test_storage_probe_reports_a_path_it_cannot_write(tmp_path):
    from vmha.hypervisor_health import host_facts

    got = host_facts.storage_probe(str(tmp_path / "gone"), "ha1", timeout=2.0)
    assert got == "cannot be written (No such file or directory)"


def test_storage_probe_does_not_follow_a_symlink(tmp_path):
    from vmha.hypervisor_health import host_facts

    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / ".vmha-probe.ha1").symlink_to(victim)
    assert host_facts.storage_probe(str(tmp_path), "ha1", timeout=2.0).startswith("cannot be written")
    assert victim.read_text() == "keep\n"


def test_storage_probe_of_a_storage_that_never_answers_times_out(tmp_path):
    import time

    from vmha.hypervisor_health import host_facts

    # opening a FIFO for writing blocks until somebody reads: a mount that never answers
    os.mkfifo(tmp_path / ".vmha-probe.ha1")
    t0 = time.monotonic()
    got = host_facts.storage_probe(str(tmp_path), "ha1", timeout=0.5)
    assert got == "does not answer within 0.5s"
    assert time.monotonic() - t0 < 1.5
    with open(tmp_path / ".vmha-probe.ha1", "rb"):  # let the left-behind thread finish
        pass
