from __future__ import annotations

import io
import os
import stat

import pytest
from vmha.ocf.log import Log


def make(env, stderr=None):
    return Log.from_env("VirtualMachine", env, stderr if stderr is not None else io.StringIO())


def test_logfile_gets_lines_with_tag_and_level(tmp_path):
    path = tmp_path / "ha.log"
    err = io.StringIO()
    log = make({"HA_LOGFILE": str(path), "OCF_RESOURCE_INSTANCE": "vm1"}, err)
    log.info("hello")
    log.error("bad")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert f"VirtualMachine(vm1)[{os.getpid()}]: INFO: hello" in lines[0]
    assert lines[1].endswith("ERROR: bad")
    assert err.getvalue() == ""  # written to the file, so not to stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_logfile_is_appended(tmp_path):
    path = tmp_path / "ha.log"
    path.write_text("old line\n")
    make({"HA_LOGFILE": str(path)}).warning("new")
    lines = path.read_text().splitlines()
    assert lines[0] == "old line" and lines[1].endswith("WARNING: new")


def test_no_file_no_facility_goes_to_stderr():
    err = io.StringIO()
    log = make({}, err)
    log.info("one")
    log.warning("two")
    log.error("three")
    assert err.getvalue() == "INFO: one\nWARNING: two\nERROR: three\n"


def test_facility_none_means_stderr():
    err = io.StringIO()
    make({"HA_LOGFACILITY": "none"}, err).info("x")
    assert err.getvalue() == "INFO: x\n"


def test_unwritable_logfile_falls_back_to_stderr(tmp_path):
    err = io.StringIO()
    make({"HA_LOGFILE": str(tmp_path / "missing-dir" / "ha.log")}, err).error("x")
    assert err.getvalue() == "ERROR: x\n"


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"HA_DEBUG": "0"}, False),
        ({"HA_debug": "1"}, True),
        ({"HA_DEBUG": "1"}, True),
        ({"HA_DEBUG": "false"}, False),
    ],
)
def test_debug_is_gated(env, on):
    err = io.StringIO()
    log = make(env, err)
    log.debug("detail")
    assert log.debug_enabled is on
    assert ("DEBUG: detail" in err.getvalue()) is on


def test_debuglog_gets_only_debug_lines(tmp_path):
    debug = tmp_path / "debug.log"
    main = tmp_path / "ha.log"
    log = make({"HA_DEBUG": "1", "HA_DEBUGLOG": str(debug), "HA_LOGFILE": str(main)})
    log.debug("d")
    log.info("i")
    assert [line.split(": ", 1)[1] for line in debug.read_text().splitlines()] == ["DEBUG: d"]
    assert [line.split(": ", 1)[1] for line in main.read_text().splitlines()] == ["DEBUG: d", "INFO: i"]


def test_newlines_collapsed(tmp_path):
    path = tmp_path / "ha.log"
    err = io.StringIO()
    make({"HA_LOGFILE": str(path)}).error("a\nb\r\nc")
    make({}, err).error("a\nb\r\nc")
    assert len(path.read_text().splitlines()) == 1
    assert path.read_text().rstrip("\n").endswith("ERROR: a b c")
    assert err.getvalue() == "ERROR: a b c\n"


def test_closed_stderr_does_not_raise():
    err = io.StringIO()
    err.close()
    make({}, err).error("nobody listens")
