"""The operator's tools on the real lab: what a person types on a cluster node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from vmha.lab.lab import Lab

pytestmark = pytest.mark.lab

LIB = str(Path(__file__).resolve().parents[2] / "lib")


def vmha(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``vmha ARGS`` from this checkout, as the machine's root runs it."""
    env = {**os.environ, "PYTHONPATH": LIB}
    return subprocess.run(  # noqa: S603 - our own command, an argument list
        [sys.executable, "-m", "vmha.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_lab_exec_runs_inside_the_host(watched: Lab) -> None:
    lab = watched
    host = lab.hosts[1]
    # its own UTS namespace (the host's name) and its own cluster (crm_mon answers there)
    done = vmha("lab", "exec", host, "--", "hostname")
    assert done.returncode == 0 and done.stdout.strip() == host, done
    mon = vmha("lab", "exec", host, "--", "crm_mon", "-1", "--output-as=xml")
    assert mon.returncode == 0 and f'<node name="{host}"' in mon.stdout, mon.stderr
    # the command's exit code is passed on; the lab's own failure is 125 with one line
    assert vmha("lab", "exec", host, "--", "sh", "-c", "exit 7").returncode == 7
    bad = vmha("lab", "exec", "no-such-host", "--", "true")
    assert bad.returncode == 125 and bad.stderr.startswith("vmha lab exec: no lab host 'no-such-host'"), bad
    empty = vmha("lab", "exec", host)
    assert empty.returncode == 125 and "no command given" in empty.stderr
