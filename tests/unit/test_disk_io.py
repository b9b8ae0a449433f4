"""Whether a domain's disk files answer on this host (vmha.virt.disk_io), on a real FUSE path
(bindfs) made to hang or fail the way the lab's storage path is."""

from __future__ import annotations

import time

import pytest
from vmha.virt import disk_io, domxml

from tests.support import fuse


def disks(*paths: str, extra: str = "") -> tuple[domxml.DiskInfo, ...]:
    xml = "".join(
        f"<disk type='file' device='disk'><source file='{p}'/><target dev='vd{chr(97 + i)}'/></disk>"
        for i, p in enumerate(paths)
    )
    return domxml.parse(f"<domain type='qemu'><name>d</name><devices>{xml}{extra}</devices></domain>".encode()).disks


@pytest.fixture()
def path(tmp_path):
    (tmp_path / "store").mkdir()
    for name in ("a.img", "b.img"):
        (tmp_path / "store" / name).write_bytes(b"\0" * 512)
    with fuse.served(str(tmp_path / "store"), str(tmp_path / "shared")) as served:
        yield served


def test_answering_storage_has_no_problem(path):
    assert disk_io.probe(disks(f"{path.mountpoint}/a.img", f"{path.mountpoint}/b.img"), 2.0) == {}


def test_hung_storage_is_silent_within_the_bound_for_all_disks_together(path):
    both = disks(f"{path.mountpoint}/a.img", f"{path.mountpoint}/b.img")
    path.hang()
    try:
        t0 = time.monotonic()
        found = disk_io.probe(both, 0.5)
        took = time.monotonic() - t0
    finally:
        path.thaw()
    assert sorted(disk_io.silent(found)) == [f"{path.mountpoint}/a.img", f"{path.mountpoint}/b.img"]
    assert found[f"{path.mountpoint}/a.img"] == "does not answer within 0.5s"
    assert took < 0.9, f"two hung disks took {took:.2f}s: probed one after the other?"


def test_cut_storage_is_an_error_not_silence(path):
    one = disks(f"{path.mountpoint}/a.img")
    path.cut()
    found = disk_io.probe(one, 2.0)
    assert found == {f"{path.mountpoint}/a.img": "cannot be opened (Transport endpoint is not connected)"}
    assert disk_io.silent(found) == []


def test_missing_file_and_network_disk(tmp_path):
    net = (
        "<disk type='network' device='disk'><source protocol='nbd' name='v'><host name='n'/></source>"
        "<target dev='vdz'/></disk>"
    )
    found = disk_io.probe(disks(str(tmp_path / "gone.img"), extra=net), 1.0)
    assert found == {str(tmp_path / "gone.img"): "cannot be opened (No such file or directory)"}


def test_read_only_disks_and_cdroms_are_not_probed(path):
    # they queue no writes: a hung ISO share must not fence every host with media attached
    ro = (
        f"<disk type='file' device='cdrom'><source file='{path.mountpoint}/a.img'/><target dev='hdc'/>"
        "<readonly/></disk>"
        f"<disk type='file' device='disk'><source file='{path.mountpoint}/b.img'/><target dev='vdb'/>"
        "<readonly/></disk>"
    )
    path.hang()
    try:
        assert disk_io.probe(disks(extra=ro), 0.5) == {}
    finally:
        path.thaw()


def test_a_file_that_opens_but_cannot_be_read_is_an_error(tmp_path, monkeypatch):
    img = tmp_path / "d.img"
    img.write_bytes(b"\0" * 4096)

    def eio(fd, bufs, offset):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(disk_io.os, "preadv", eio)
    assert disk_io.probe(disks(str(img)), 1.0) == {str(img): "cannot be read (Input/output error)"}
