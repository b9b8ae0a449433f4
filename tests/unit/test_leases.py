"""Disk leases: reading libvirt's lock manager setup, and which disks it leaves unguarded."""

from __future__ import annotations

import pytest
from vmha.virt import domxml, leases
from vmha.virt.leases import LockSetup

DISK_PATH = "/var/lib/vmha/lab/run/shared/vm1.img"


def domain(disks: str, extra: str = "") -> domxml.DomainConfig:
    xml = f"<domain type='qemu'><name>vm1</name><devices>{disks}{extra}</devices></domain>"
    return domxml.parse(xml.encode())


FILE_DISK = f"<disk type='file' device='disk'><source file='{DISK_PATH}'/><target dev='vda'/></disk>"
BLOCK_DISK = "<disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vdb'/></disk>"
NET_DISK = (
    "<disk type='network' device='disk'><source protocol='nbd' name='vol'><host name='nas'/></source>"
    "<target dev='vdc'/></disk>"
)
CDROM = "<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='hdc'/><readonly/></disk>"
SHARED = "<disk type='file' device='disk'><source file='/s/quorum.img'/><target dev='vdd'/><shareable/></disk>"


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)


def test_parse_conf_reads_strings_and_numbers_and_skips_the_rest():
    text = 'lock_manager = "lockd"  # comment\n#auto_disk_leases = 0\nauto_disk_leases=1\nlist = [ "a" ]\nbad line\n'
    assert leases.parse_conf(text) == {"lock_manager": "lockd", "auto_disk_leases": 1}


def test_no_lock_manager_when_qemu_conf_names_none(tmp_path):
    write(tmp_path, "qemu.conf", 'user = "libvirt-qemu"\n')
    assert leases.lock_setup(str(tmp_path)) == LockSetup(None)
    write(tmp_path, "qemu.conf", 'lock_manager = "nop"\n')
    assert leases.lock_setup(str(tmp_path)).manager is None


def test_lockd_leases_every_disk_by_default(tmp_path):
    write(tmp_path, "qemu.conf", 'lock_manager = "lockd"\n')
    setup = leases.lock_setup(str(tmp_path))
    assert setup == LockSetup("lockd", True, None)
    write(tmp_path, "qemu-lockd.conf", 'auto_disk_leases = 1\nfile_lockspace_dir = "/shared/leases"\n')
    assert leases.lock_setup(str(tmp_path)).lockspace_dir == "/shared/leases"


def test_sanlock_leases_only_explicit_leases_by_default(tmp_path):
    write(tmp_path, "qemu.conf", 'lock_manager = "sanlock"\n')
    assert leases.lock_setup(str(tmp_path)) == LockSetup("sanlock", False, None)


def test_unguarded_disks_without_a_lock_manager_are_the_writable_ones():
    cfg = domain(FILE_DISK + CDROM + SHARED)
    assert [d.source for d in leases.unprotected_disks(cfg, LockSetup(None))] == [DISK_PATH]


def test_lockd_guards_file_and_block_disks_but_not_network_disks():
    cfg = domain(FILE_DISK + BLOCK_DISK + NET_DISK)
    left = leases.unprotected_disks(cfg, LockSetup("lockd", True, "/shared/leases"))
    assert [d.source for d in left] == ["nbd:vol"]


def test_without_automatic_leases_only_a_domain_lease_guards():
    cfg = domain(FILE_DISK)
    assert len(leases.unprotected_disks(cfg, LockSetup("sanlock", False))) == 1
    lease = "<lease><lockspace>ls</lockspace><key>vm1</key><target path='/leases/vm1'/></lease>"
    assert leases.unprotected_disks(domain(FILE_DISK, lease), LockSetup("sanlock", False)) == []


@pytest.mark.parametrize(
    "message",
    [
        f"resource busy: Lockspace resource '{leases.lease_resource(DISK_PATH)}' is locked",
        f"resource busy: Lockspace resource '{DISK_PATH}' is locked",
    ],
)
def test_the_refused_disk_is_named_from_the_error(message):
    cfg = domain(BLOCK_DISK + FILE_DISK)
    assert leases.disk_in_error(message, cfg.disks) == DISK_PATH


def test_an_unknown_resource_names_no_disk():
    cfg = domain(FILE_DISK)
    assert leases.disk_in_error("resource busy: Lockspace resource '" + "0" * 64 + "' is locked", cfg.disks) is None
