from __future__ import annotations

import os
import signal
import time

import pytest
from vmha.ocf.runner import (
    SEARCH_DIRS,
    CommandNotFound,
    CommandRunner,
    CommandTimedOut,
    child_env,
    find_program,
)


def executable(path, body="#!/bin/sh\nexit 0\n", mode=0o755):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(mode)
    return path


class TestFindProgram:
    def test_found_in_fixed_dirs_in_order(self, tmp_path):
        first, second = tmp_path / "a", tmp_path / "b"
        executable(second / "tool")
        executable(first / "tool")
        assert find_program("tool", (str(first), str(second))) == str(first / "tool")

    def test_skips_non_executable(self, tmp_path):
        first, second = tmp_path / "a", tmp_path / "b"
        executable(first / "tool", mode=0o644)
        executable(second / "tool")
        assert find_program("tool", (str(first), str(second))) == str(second / "tool")

    def test_never_uses_path(self, tmp_path, monkeypatch):
        bindir = tmp_path / "bin"
        executable(bindir / "vmha-only-on-path")
        monkeypatch.setenv("PATH", str(bindir))
        with pytest.raises(CommandNotFound, match="not installed"):
            find_program("vmha-only-on-path")

    def test_never_uses_cwd(self, tmp_path, monkeypatch):
        executable(tmp_path / "tool")
        monkeypatch.chdir(tmp_path)
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(CommandNotFound):
            find_program("tool", (str(empty),))
        with pytest.raises(CommandNotFound):
            find_program("./tool", (str(empty),))

    def test_result_is_absolute(self):
        path = find_program("sh")
        assert os.path.isabs(path) and os.path.dirname(path) in SEARCH_DIRS

    def test_absolute_path_taken_as_is(self, tmp_path):
        tool = executable(tmp_path / "tool")
        assert find_program(str(tool), ()) == str(tool)

    def test_absolute_path_not_executable(self, tmp_path):
        tool = executable(tmp_path / "tool", mode=0o644)
        with pytest.raises(CommandNotFound):
            find_program(str(tool))
        with pytest.raises(CommandNotFound):
            find_program(str(tmp_path / "missing"))


class TestChildEnv:
    BASE = {
        "PATH": "/home/evil/bin",
        "LD_PRELOAD": "/tmp/evil.so",
        "PYTHONPATH": "/tmp",
        "HOME": "/root",
        "LANG": "de_DE.UTF-8",
        "LC_ALL": "de_DE.UTF-8",
        "LC_MESSAGES": "de_DE.UTF-8",
        "SECRET_TOKEN": "s3cr3t",
        "CIB_file": "/tmp/cib.xml",
        "PCMK_debug": "1",
        "HA_RSCTMP": "/run/resource-agents",
        "OCF_RESKEY_config": "/etc/vm1.xml",
    }

    def test_only_cluster_variables_pass(self):
        env = child_env(self.BASE)
        assert env == {
            "LC_ALL": "C",
            "LANG": "C",
            "PATH": ":".join(SEARCH_DIRS),
            "CIB_file": "/tmp/cib.xml",
            "PCMK_debug": "1",
            "HA_RSCTMP": "/run/resource-agents",
            "OCF_RESKEY_config": "/etc/vm1.xml",
        }

    def test_extra_added(self):
        env = child_env({}, {"VMHA_DOMAIN_NAME": "vm1"})
        assert env["VMHA_DOMAIN_NAME"] == "vm1" and env["LC_ALL"] == "C"

    def test_unset_withholds_ours(self):
        env = child_env(self.BASE, unset=("OCF_RESKEY_config", "CIB_file"))
        assert "OCF_RESKEY_config" not in env and "CIB_file" not in env and env["PCMK_debug"] == "1"

    def test_unset_reaches_the_program(self):
        runner = CommandRunner({"OCF_RESKEY_CRM_meta_on_node": "ha1", "OCF_RESKEY_x": "1"})
        seen = runner.run(["env"], timeout=10, env_unset=("OCF_RESKEY_CRM_meta_on_node",)).stdout
        assert "OCF_RESKEY_x=1" in seen and "on_node" not in seen


class TestRun:
    def test_output_rc_and_absolute_argv(self):
        done = CommandRunner().run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
        assert done.rc == 3 and not done.ok
        assert (done.stdout, done.stderr) == ("out\n", "err\n")
        assert os.path.isabs(done.argv[0])

    def test_stdin(self):
        done = CommandRunner().run(["cat"], timeout=10, stdin="fed\n")
        assert done.ok and done.stdout == "fed\n"

    def test_no_stdin_reads_eof(self):
        done = CommandRunner().run(["cat"], timeout=10)
        assert done.ok and done.stdout == ""

    def test_child_sees_only_the_filtered_environment(self):
        runner = CommandRunner({"SECRET_TOKEN": "s3cr3t", "CIB_file": "/tmp/cib.xml", "LC_ALL": "de_DE.UTF-8"})
        done = runner.run(["env"], timeout=10, env_extend={"VMHA_DOMAIN_NAME": "vm1"})
        seen = dict(line.split("=", 1) for line in done.stdout.splitlines())
        assert seen["LC_ALL"] == "C"
        assert seen["CIB_file"] == "/tmp/cib.xml"
        assert seen["VMHA_DOMAIN_NAME"] == "vm1"
        assert "SECRET_TOKEN" not in seen

    def test_shell_metacharacters_are_literal(self, tmp_path):
        marker1, marker2 = tmp_path / "pwned1", tmp_path / "pwned2"
        arg = f"$(touch {marker1}); `touch {marker2}` | & ; > *"
        done = CommandRunner().run(["/bin/echo", arg], timeout=10)
        assert done.stdout == arg + "\n"
        assert not marker1.exists() and not marker2.exists()

    def test_undecodable_output_is_replaced(self):
        done = CommandRunner().run(["printf", "\\377ok"], timeout=10)
        assert done.stdout.endswith("ok")

    def test_missing_program(self):
        with pytest.raises(CommandNotFound):
            CommandRunner().run(["vmha-no-such-program"], timeout=10)

    def test_empty_argv(self):
        with pytest.raises(ValueError):
            CommandRunner().run([], timeout=10)

    def test_no_time_left_does_not_run(self, tmp_path):
        marker = tmp_path / "ran"
        with pytest.raises(CommandTimedOut):
            CommandRunner().run(["touch", str(marker)], timeout=0)
        assert not marker.exists()

    def test_timeout_kills_and_raises(self, tmp_path):
        pidfile = tmp_path / "pid"
        started = time.monotonic()
        with pytest.raises(CommandTimedOut, match=r"sh did not finish within 0\.3s"):
            CommandRunner().run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout=0.3)
        assert time.monotonic() - started < 3
        pid = int(pidfile.read_text())
        assert not _alive(pid)

    def test_timeout_kills_the_whole_process_group(self, tmp_path):
        pidfile = tmp_path / "pid"
        try:
            with pytest.raises(CommandTimedOut):
                CommandRunner().run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.3)
            time.sleep(0.1)
            pid = int(pidfile.read_text())
            assert not _alive(pid)
        finally:
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text()), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
