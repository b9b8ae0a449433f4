from __future__ import annotations

import os

import pytest
from vmha import qemu_processes as procscan
from vmha.qemu_processes import QemuProcess, find_qemu, qemu_processes

UUID1 = "c7a5fdbd-edaf-9455-926a-d65c16db1809"
UUID2 = "bba65c0e-c049-934f-b6aa-4e2c0582acdf"


def qemu_argv(name_arg, uuid=None, exe="/usr/bin/qemu-system-x86_64"):
    argv = [exe, "-name", name_arg, "-S", "-machine", "pc,usb=off"]
    if uuid:
        argv += ["-uuid", uuid]
    return argv + ["-display", "none"]


def add(proc, pid, argv):
    d = proc / str(pid)
    d.mkdir()
    raw = b"" if argv is None else b"\0".join(a.encode() for a in argv) + b"\0"
    (d / "cmdline").write_bytes(raw)
    return d


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc"
    root.mkdir()
    add(root, 100, qemu_argv("guest=vm1,debug-threads=on", UUID1.upper()))
    add(root, 200, ["/usr/bin/python3", "fake.py", "-name", "guest=vm2,debug-threads=on", "-uuid", UUID2])
    add(root, 2, None)  # kernel thread: empty cmdline
    (root / "self").mkdir()  # not a pid
    (root / "300").mkdir()  # exited meanwhile: no cmdline
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    return root


def test_only_qemu_processes_are_listed(proc):
    assert qemu_processes(str(proc)) == [QemuProcess(100, "vm1", UUID1)]


def test_find_by_uuid_any_case(proc):
    assert find_qemu(None, UUID1, str(proc)).pid == 100
    assert find_qemu(None, UUID1.upper(), str(proc)).pid == 100


def test_find_by_name(proc):
    assert find_qemu("vm1", None, str(proc)).pid == 100


def test_name_of_a_non_qemu_process_is_not_found(proc):
    assert find_qemu("vm2", UUID2, str(proc)) is None


def test_nothing_matches(proc):
    assert find_qemu("other", "00000000-0000-0000-0000-000000000000", str(proc)) is None
    assert find_qemu(None, None, str(proc)) is None


def test_missing_proc_dir(tmp_path):
    assert qemu_processes(str(tmp_path / "nope")) == []


@pytest.mark.parametrize(
    ("exe", "is_qemu"),
    [
        ("/usr/bin/qemu-system-aarch64", True),
        ("/usr/libexec/qemu-kvm", True),
        ("/usr/bin/kvm", True),
        ("qemu-system-x86_64", True),
        ("/usr/bin/qemu-img", False),
        ("/usr/sbin/libvirtd", False),
    ],
)
def test_executables(tmp_path, exe, is_qemu):
    add(tmp_path, 7, qemu_argv("guest=vm1", UUID1, exe=exe))
    assert (find_qemu("vm1", None, str(tmp_path)) is not None) is is_qemu


def test_old_style_name_without_guest_key(tmp_path):
    add(tmp_path, 7, qemu_argv("vm1,process=qemu:vm1", UUID1))
    assert qemu_processes(str(tmp_path)) == [QemuProcess(7, "vm1", UUID1)]


def test_name_with_equals_sign(tmp_path):
    add(tmp_path, 7, qemu_argv("guest=a=b,debug-threads=on", UUID1))
    assert find_qemu("a=b", None, str(tmp_path)).pid == 7


def test_without_uuid_or_name(tmp_path):
    add(tmp_path, 7, ["/usr/bin/qemu-system-x86_64", "-m", "512", "-name"])  # -name as the last word
    assert qemu_processes(str(tmp_path)) == [QemuProcess(7, None, None)]


def test_name_with_a_comma_as_libvirt_escapes_it(tmp_path):
    # from libvirt's tests/qemuxmlconfdata/name-escape.x86_64-latest.args
    add(tmp_path, 7, qemu_argv("guest=foo=1,,bar=2,debug-threads=on", UUID1))
    assert find_qemu("foo=1,bar=2", None, str(tmp_path)) is not None


def test_uuid_match_preferred_over_name_match(tmp_path, monkeypatch):
    add(tmp_path, 50, qemu_argv("guest=vm1,debug-threads=on", UUID2))  # same name, another domain
    add(tmp_path, 60, qemu_argv("guest=vm1-renamed,debug-threads=on", UUID1))
    real_listdir = os.listdir
    monkeypatch.setattr(procscan.os, "listdir", lambda p: sorted(real_listdir(p)))
    found = find_qemu("vm1", UUID1, str(tmp_path))
    assert found is not None and found.pid == 60
