"""The lab's pure parts, without root or a cluster: checker logic, initramfs format,
fence agent protocol, crm_mon parsing, generated configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from vmha.lab import events, fence_agent, proc
from vmha.lab.checker import DoubleRunChecker, Tracker, host_uuid_of
from vmha.lab.cluster import parse_crm_mon
from vmha.lab.config import LabConfig, host_uuid
from vmha.lab.demo import FIGURES, demo_ok, double_run_figures
from vmha.lab.health import Evacuation
from vmha.lab.image import Cpio
from vmha.lab.nodefiles import corosync_conf, libvirtd_conf, qemu_conf
from vmha.lab.scenarios import Failover, Migration, ServiceRecovery, op_steps


def feed(t: Tracker, host: str, times: list[float], running: bool, uuid: str = "u") -> None:
    for ts in times:
        t.sample(host, ts, ts + 0.01, {uuid: "vm"} if running else {})


class TestTracker:
    def test_live_migration_is_not_a_double_run(self) -> None:
        t = Tracker()
        for i in range(100):
            ts = i * 0.2
            # source runs until 10.0, destination (paused before) runs from 10.05
            t.sample("A", ts, ts + 0.01, {"u": "vm"} if ts < 10.0 else {})
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 10.05 else {})
        assert t.incidents == []
        assert set(t.runs("u")) == {"A", "B"}

    def test_split_brain_is_recorded_once(self) -> None:
        t = Tracker()
        for i in range(20):
            ts = i * 0.2
            t.sample("A", ts, ts + 0.01, {"u": "vm"})
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if i > 5 else {})
        assert len(t.incidents) == 1
        assert t.incidents[0].hosts == ("A", "B")
        assert t.incidents[0].name == "vm"

    def test_handover_lag_of_a_live_migration_is_not_a_double_run(self) -> None:
        """libvirt on the source still says running 0.3 s after the destination, which says
        it runs because the migration came in: the STOP event was late, not the guest."""
        t = Tracker()
        for i in range(60):
            ts = i * 0.2
            t.sample("A", ts, ts + 0.01, {"u": "vm"} if ts < 6.3 else {})
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 6.0 else {}, migrated=frozenset({"u"}))
        assert t.incidents == []

    def test_a_source_that_keeps_running_after_the_handover_is_caught(self) -> None:
        t = Tracker()
        for i in range(60):
            ts = i * 0.2
            t.sample("A", ts, ts + 0.01, {"u": "vm"} if ts < 8.0 else {})
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 6.0 else {}, migrated=frozenset({"u"}))
        assert len(t.incidents) == 1 and t.incidents[0].overlap_s >= 1.0

    def test_a_late_stop_event_while_the_source_is_still_in_its_migration_job(self) -> None:
        """On two busy cores the source said running 1.5 s after the destination resumed,
        its outgoing migration job still open: libvirt's handover, not a double run."""
        t = Tracker()
        for i in range(60):
            ts = i * 0.2
            src = {"u": "vm"} if ts < 7.5 else {}
            t.sample("A", ts, ts + 0.01, src, departing=frozenset({"u"}) if ts > 5.0 else frozenset())
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 6.0 else {}, migrated=frozenset({"u"}))
        assert t.incidents == []

    def test_the_same_lag_without_the_migration_job_counts(self) -> None:
        t = Tracker()
        for i in range(60):
            ts = i * 0.2
            t.sample("A", ts, ts + 0.01, {"u": "vm"} if ts < 7.5 else {})
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 6.0 else {}, migrated=frozenset({"u"}))
        assert len(t.incidents) == 1 and t.incidents[0].overlap_s > 1.0

    def test_a_migration_job_does_not_excuse_a_cold_start_elsewhere(self) -> None:
        t = Tracker()
        for i in range(60):
            ts = i * 0.2
            t.sample("A", ts, ts + 0.01, {"u": "vm"} if ts < 7.5 else {}, departing=frozenset({"u"}))
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 6.0 else {})
        assert len(t.incidents) == 1

    def test_a_migration_job_does_not_excuse_a_long_overlap(self) -> None:
        t = Tracker()
        for i in range(120):
            ts = i * 0.2
            t.sample("A", ts, ts + 0.01, {"u": "vm"}, departing=frozenset({"u"}))
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 6.0 else {}, migrated=frozenset({"u"}))
        assert len(t.incidents) == 1 and t.incidents[0].overlap_s >= 10.0 - 0.5

    def test_a_short_overlap_with_a_cold_start_counts(self) -> None:
        t = Tracker()
        for i in range(60):
            ts = i * 0.2
            t.sample("A", ts, ts + 0.01, {"u": "vm"} if ts < 6.3 else {})
            t.sample("B", ts + 0.1, ts + 0.11, {"u": "vm"} if ts + 0.1 > 6.0 else {})
        assert len(t.incidents) == 1

    def test_one_sample_proves_nothing(self) -> None:
        # a single poll may straddle the switch-over of a migration: no interval from it
        t = Tracker()
        feed(t, "A", [0.0, 0.2, 0.4], True)
        feed(t, "B", [0.3], True)
        feed(t, "B", [0.5], False)
        assert t.incidents == []

    def test_restart_elsewhere_after_stop_is_fine(self) -> None:
        t = Tracker()
        feed(t, "A", [0.0, 0.2, 0.4], True)
        feed(t, "A", [0.6], False)
        feed(t, "B", [0.8, 1.0, 1.2], True)
        assert t.incidents == []


@pytest.mark.skipif(not os.path.exists("/usr/bin/cpio"), reason="cpio is not installed")
def test_cpio_newc_is_readable_by_cpio() -> None:
    c = Cpio()
    c.file("usr/sbin/tool", b"#!/bin/sh\n", 0o755)
    c.symlink("bin/sh", "busybox")
    archive = c.finish()
    listing = (
        subprocess.run(["/usr/bin/cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True)
        .stdout.decode()
        .splitlines()
    )
    assert [line.split()[-1] for line in listing] == ["usr", "usr/sbin", "usr/sbin/tool", "busybox"]
    assert listing[2].startswith("-rwxr-xr-x") and listing[3].startswith("lrwxrwxrwx")
    assert len(archive) % 4 == 0


class TestFenceAgent:
    def test_stdin_protocol(self) -> None:
        opts = fence_agent.parse_options([], ["action=reboot", "port=ha2", "nodename=ha1"])
        assert opts["action"] == "reboot" and opts["plug"] == "ha2"

    def test_argv_protocol(self) -> None:
        opts = fence_agent.parse_options(["-o", "status", "-n", "ha1", "--socket=/x"], [])
        assert opts == {"action": "status", "plug": "ha1", "socket": "/x"}

    def test_metadata_is_xml(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert fence_agent.run({"action": "metadata"}) == 0
        import xml.etree.ElementTree as ET

        root = ET.fromstring(capsys.readouterr().out)  # noqa: S314
        assert root.get("name") == "fence_vmhalab"

    def test_unreachable_switch_is_a_failure(self) -> None:
        assert fence_agent.run({"action": "off", "plug": "ha1", "socket": "/nonexistent"}) == 1

    def test_runs_standalone(self) -> None:
        # installed as a lone file: it must not need vmha on the path
        out = subprocess.run(
            [sys.executable, "-I", fence_agent.__file__, "-o", "metadata"], capture_output=True, text=True, check=True
        ).stdout
        assert "fence_vmhalab" in out


def test_two_node_only_with_two_hosts() -> None:
    assert "two_node: 1" in corosync_conf(LabConfig(nodes=2, vms=0))
    three = corosync_conf(LabConfig(nodes=3, vms=0))
    assert "two_node" not in three and "ring0_addr: 10.99.0.3" in three
    assert "token: 1000" in three


def test_crm_mon_failure_of_migrate_to() -> None:
    xml = """<pacemaker-result><summary><current_dc present="true" name="ha1"/></summary>
    <nodes><node name="ha1" online="true" unclean="false"/><node name="ha2" online="false"
    unclean="true"/></nodes><resources><resource id="vm_a" resource_agent="ocf:vmha:VirtualMachine"
    role="Started" active="true" failed="false"><node name="ha1"/></resource></resources>
    <failures><failure op_key="vm_a_migrate_to_0" node="ha1" exitstatus="error" exitcode="1"
    status="complete" exec="11423ms" interval="0" task="migrate_to"/></failures></pacemaker-result>"""
    s = parse_crm_mon(xml)
    assert s.dc == "ha1" and s.online() == ["ha1"] and s.nodes["ha2"].unclean
    assert s.started_on("vm_a") == "ha1"
    (f,) = s.failures
    assert (f.resource, f.task, f.rc, f.exec_time_ms) == ("vm_a", "migrate_to", 1, 11423)


class TestNotMeasuredIsNull:
    """A figure the lab did not measure is null in its JSON, and a null safety figure makes
    the demo fail: no default 0/False/"" standing in for "not measured"."""

    def report(self, **over: object) -> dict[str, object]:
        base: dict[str, object] = {
            "ok": True,
            "double_run_seen": False,
            "fenced": True,
            "down_clean": True,
            "writes_lost": 0,
            "committed_rows_lost": 0,
        }
        return {**base, **over}

    def test_all_measured_and_good_is_ok(self) -> None:
        assert demo_ok(self.report())

    @pytest.mark.parametrize("key", ["double_run_seen", "fenced", "down_clean", "writes_lost", "committed_rows_lost"])
    def test_an_unmeasured_safety_figure_is_not_ok(self, key: str) -> None:
        assert not demo_ok(self.report(**{key: None}))
        r = self.report()
        del r[key]
        assert not demo_ok(r)

    def test_a_double_run_is_not_ok(self) -> None:
        assert not demo_ok(self.report(double_run_seen=True))

    @pytest.mark.parametrize("lost", [1, False, 0.0])
    @pytest.mark.parametrize("key", ["writes_lost", "committed_rows_lost"])
    def test_a_lost_write_or_a_non_count_is_not_ok(self, key: str, lost: object) -> None:
        assert not demo_ok(self.report(**{key: lost}))

    def test_no_checker_is_null(self) -> None:
        assert double_run_figures(None) == {"double_runs": None, "double_run_seen": None, "double_run_samples": None}

    def test_a_checker_that_never_sampled_a_host_is_null(self) -> None:
        chk = DoubleRunChecker(["ha1", "ha2"], lambda _h: 0)
        feed(chk.tracker, "ha1", [0.0, 0.2], True)
        got = double_run_figures(chk)
        assert got["double_run_seen"] is None and got["double_run_samples"] == {"ha1": 2, "ha2": 0}
        feed(chk.tracker, "ha2", [0.3], False)
        assert double_run_figures(chk)["double_run_seen"] is False

    def test_demo_report_starts_all_null(self) -> None:
        report = {"ok": False, **dict.fromkeys(FIGURES)}
        assert all(report[k] is None for k in FIGURES) and not demo_ok(report)

    def test_failover_without_events_is_null(self) -> None:
        fo = Failover("ha1", ["vm1"])
        got = fo.to_json()
        for k in ("failover_s", "detection_s", "fenced_s", "fenced", "rejoin_s"):
            assert got[k] is None, k
        fo.start_exec_s["vm1"] = None
        assert fo.to_json()["start_exec_s"] == {"vm1": None}

    def test_migration_without_events_is_null(self) -> None:
        got = Migration("vm1", "ha1", "ha2", 3.0, 4.0).to_json()
        assert got["live"] is None and got["steps_s"] is None

    def test_op_step_without_exec_time_is_null(self) -> None:
        op = events.Event(
            kind="resource",
            reporter="ha1",
            node="ha1",
            rsc="vm1",
            task="start",
            interval_ms=0,
            rc=0,
            target_rc=0,
            status="",
            desc="",
            attribute="",
            value="",
            at=10.0,
            exec_ms=None,
        )
        assert op_steps([op], 9.0)["start"] is None

    def test_service_recovery_and_evacuation_unmeasured(self) -> None:
        r = ServiceRecovery("web1", "vm1", "ha1").to_json()
        assert r["exit_reason"] is None and r["boots_before"] is None and r["vm_untouched"] is False
        ev = Evacuation("ha1", []).to_json()
        assert ev["evacuation_s"] is None and ev["red_s"] is None and ev["green_again_s"] is None


class TestOwnHostsOnly:
    def test_host_uuid_of_capabilities(self) -> None:
        caps = "<capabilities><host><uuid>00000000-0000-4000-8000-000000000002</uuid></host></capabilities>"
        assert host_uuid_of(caps) == host_uuid(2)
        assert host_uuid_of("<capabilities/>") is None and host_uuid_of("not xml") is None

    def test_host_root_needs_the_marker(self) -> None:
        # our own process: its /run has no lab marker, so it never resolves to a lab host
        assert proc.host_root(os.getpid(), "ha1") is None

    def test_libvirt_config_is_the_labs_own(self) -> None:
        conf = libvirtd_conf(2)
        assert f'host_uuid = "{host_uuid(2)}"' in conf and 'listen_addr = "10.99.0.2"' in conf
        assert "namespaces = [ ]" in qemu_conf(2)


class TestDisksAndLeases:
    def test_every_disk_is_leased_in_the_shared_lockspace(self) -> None:
        from vmha.lab.config import LabPaths
        from vmha.lab.nodefiles import qemu_lockd_conf
        from vmha.virt import leases

        assert leases.parse_conf(qemu_conf(1))["lock_manager"] == "lockd"
        lockd = leases.parse_conf(qemu_lockd_conf(LabPaths().lease_dir))
        assert lockd == {
            "auto_disk_leases": 1,
            "require_lease_for_disks": 1,
            "file_lockspace_dir": LabPaths().lease_dir,
        }

    def test_the_guest_disk_pauses_on_errors_and_skips_the_page_cache(self) -> None:
        import xml.etree.ElementTree as ET

        from vmha.lab import guest
        from vmha.lab.image import GuestImage

        img = GuestImage("/k", "/i", "6.1")
        root = ET.fromstring(guest.domain_xml("vm1", img, "/vms", disk="/shared/vm1.img"))  # noqa: S314 - ours
        driver = root.find("devices/disk/driver")
        assert driver is not None and driver.attrib == {
            "name": "qemu",
            "type": "raw",
            "cache": "none",
            "error_policy": "stop",
            "rerror_policy": "stop",
        }
        assert root.find("devices/disk/source/seclabel").get("relabel") == "no"  # type: ignore[union-attr]
        assert ET.fromstring(guest.domain_xml("vm1", img, "/vms")).find("devices/disk") is None  # noqa: S314

    def test_a_database_vm_has_its_data_disk_as_vdb_with_the_same_safety_and_more_memory(self) -> None:
        import xml.etree.ElementTree as ET

        from vmha.lab import guest
        from vmha.lab.image import GuestImage

        img = GuestImage("/k", "/i", "6.1")
        xml = guest.domain_xml("vm3", img, "/vms", disk="/s/vm3.img", data_disk="/s/vm3-db.img", memory_mib=256)
        root = ET.fromstring(xml)  # noqa: S314 - ours
        disks = {d.find("target").get("dev"): d for d in root.findall("devices/disk")}  # type: ignore[union-attr]
        assert sorted(disks) == ["vda", "vdb"]
        assert disks["vdb"].find("source").get("file") == "/s/vm3-db.img"  # type: ignore[union-attr]
        assert disks["vdb"].find("driver").get("cache") == "none"  # type: ignore[union-attr]
        assert disks["vdb"].find("driver").get("error_policy") == "stop"  # type: ignore[union-attr]
        assert root.find("memory").text == "256"  # type: ignore[union-attr]

    def test_the_guest_database_script_is_valid_sh_and_answers_lsb_codes(self, tmp_path: Path) -> None:
        """busybox sh (the guest's) parses it; outside a guest, status finds no data
        directory: 3, stopped; an unknown verb is refused with 2."""
        from vmha.lab import dbdisk

        script = tmp_path / "vmha-pg"
        script.write_text(dbdisk.GUEST_SCRIPT)
        assert subprocess.run(["/bin/busybox", "sh", "-n", str(script)], check=False).returncode == 0
        if os.path.exists(dbdisk.GUEST_MOUNT):
            pytest.skip(f"{dbdisk.GUEST_MOUNT} exists on this machine")
        status = subprocess.run(["/bin/busybox", "sh", str(script), "status"], check=False, capture_output=True)
        assert status.returncode == 3
        bad = subprocess.run(["/bin/busybox", "sh", str(script), "restart"], check=False, capture_output=True)
        assert bad.returncode == 2 and b"usage" in bad.stdout

    @pytest.mark.skipif(os.geteuid() != 0, reason="initdb runs as the postgres user: needs root")
    def test_the_database_disk_is_journaled_durable_and_keeps_its_password_private(self, tmp_path: Path) -> None:
        from vmha.lab import dbdisk
        from vmha.ocf.runner import CommandRunner

        if not os.path.exists(f"{dbdisk.PG_LIB}/bin/postgres"):
            pytest.fail("postgresql-15 is not installed (make test installs it)")
        image_dir = tmp_path / "image"
        disk = dbdisk.ensure_template(str(image_dir), CommandRunner())
        pw = os.stat(dbdisk.password_file(str(image_dir)))
        assert pw.st_uid == 0 and pw.st_mode & 0o777 == 0o600
        header = subprocess.run(["dumpe2fs", "-h", disk], capture_output=True, text=True, check=True).stdout
        assert "has_journal" in header  # the guest's filesystem must come back from a power cut

        def cat(path: str) -> str:
            done = subprocess.run(["debugfs", "-R", f"cat {path}", disk], capture_output=True, text=True, check=True)
            return done.stdout

        conf = cat("/data/postgresql.auto.conf")
        for setting in ("fsync = on", "synchronous_commit = on", "full_page_writes = on", "listen_addresses = '*'"):
            assert setting in conf
        assert "host all all 0.0.0.0/0 scram-sha-256" in cat("/data/pg_hba.conf")
        assert dbdisk.read_password(str(image_dir)) not in conf + cat("/data/pg_hba.conf")
        # built once: a second call reuses it
        mtime = os.stat(disk).st_mtime_ns
        assert dbdisk.ensure_template(str(image_dir), CommandRunner()) == disk and os.stat(disk).st_mtime_ns == mtime

    def test_the_tie_breaker_delays_fencing_the_first_host(self) -> None:
        from vmha.lab.config import fence_delay_map

        assert fence_delay_map(["ha1", "ha2"]) == "ha1:1s;ha2:0s"
