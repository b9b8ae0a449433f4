from __future__ import annotations

import json
import os
import stat

import pytest
from vmha.ocf import statefile


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(directory):
    return [name for name in os.listdir(directory) if name.startswith(".vmha-")]


class TestStatePath:
    def test_unsafe_characters_replaced(self, tmp_path):
        path = statefile.state_path(str(tmp_path), "VirtualMachine", "../../etc/passwd vm:0")
        assert os.path.dirname(path) == str(tmp_path)
        assert os.path.basename(path) == "vmha-VirtualMachine-.._.._etc_passwd_vm:0.json"


class TestWriteRead:
    def test_round_trip_with_mode_0600(self, tmp_path):
        path = str(tmp_path / "sub" / "state.json")  # directory created on demand
        statefile.write(path, {"uuid": "abc", "cpu": 2})
        assert statefile.read(path) == {"uuid": "abc", "cpu": 2}
        assert mode(path) == 0o600
        assert leftovers(tmp_path / "sub") == []

    def test_replaces_and_tightens_an_existing_file(self, tmp_path):
        path = tmp_path / "state.json"
        path.write_text("{}")
        path.chmod(0o666)
        statefile.write(str(path), {"a": 1})
        assert json.loads(path.read_text()) == {"a": 1}
        assert mode(path) == 0o600

    def test_failed_write_keeps_the_old_content(self, tmp_path):
        path = str(tmp_path / "state.json")
        statefile.write(path, {"old": True})
        with pytest.raises(TypeError):
            statefile.write(path, {"bad": object()})
        assert statefile.read(path) == {"old": True}
        assert leftovers(tmp_path) == []

    @pytest.mark.parametrize("content", [b"", b'{"a": 1', b"garbage", b"[1, 2]", b'"text"', b"\xff\xfe\x00"])
    def test_torn_or_foreign_file_reads_as_empty(self, tmp_path, content):
        path = tmp_path / "state.json"
        path.write_bytes(content)
        assert statefile.read(str(path)) == {}

    def test_missing_file_reads_as_empty(self, tmp_path):
        assert statefile.read(str(tmp_path / "nope.json")) == {}

    def test_directory_reads_as_empty(self, tmp_path):
        assert statefile.read(str(tmp_path)) == {}

    def test_remove_is_idempotent(self, tmp_path):
        path = str(tmp_path / "state.json")
        statefile.write(path, {})
        statefile.remove(path)
        statefile.remove(path)
        assert not os.path.exists(path)


class TestWriteFileAtomic:
    def test_new_file_is_0600(self, tmp_path):
        path = tmp_path / "vm1.xml"
        statefile.write_file_atomic(str(path), b"<domain/>")
        assert path.read_bytes() == b"<domain/>"
        assert mode(path) == 0o600

    @pytest.mark.parametrize("old_mode", [0o644, 0o640, 0o600, 0o664])
    def test_keeps_the_mode_of_the_file_it_replaces(self, tmp_path, old_mode):
        path = tmp_path / "vm1.xml"
        path.write_bytes(b"old")
        path.chmod(old_mode)
        inode = path.stat().st_ino
        statefile.write_file_atomic(str(path), b"new")
        assert path.read_bytes() == b"new"
        assert mode(path) == old_mode
        assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
        assert leftovers(tmp_path) == []

    def test_explicit_mode_wins(self, tmp_path):
        path = tmp_path / "vm1.xml"
        path.write_bytes(b"old")
        path.chmod(0o644)
        statefile.write_file_atomic(str(path), b"new", mode=0o600)
        assert mode(path) == 0o600

    def test_keeps_owner(self, tmp_path):
        path = tmp_path / "vm1.xml"
        path.write_bytes(b"old")
        if os.geteuid() == 0:
            os.chown(path, 1234, 5678)
        before = path.stat()
        statefile.write_file_atomic(str(path), b"new")
        after = path.stat()
        assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)

    def test_missing_directory_raises_oserror(self, tmp_path):
        with pytest.raises(OSError):
            statefile.write_file_atomic(str(tmp_path / "nodir" / "x"), b"x")

    def test_symlink_target_is_updated(self, tmp_path):
        shared = tmp_path / "shared"
        shared.mkdir()
        target = shared / "vm1.xml"
        target.write_bytes(b"old")
        target.chmod(0o644)
        link = tmp_path / "vm1.xml"
        link.symlink_to(target)
        statefile.write_file_atomic(str(link), b"new")
        assert link.is_symlink()
        assert target.read_bytes() == b"new"
        assert mode(target) == 0o644
