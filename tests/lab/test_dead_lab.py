"""What a lab that died leaves behind does not block the next one, while a lab somebody runs
does: real network namespaces, no cluster (``Lab.leftovers``, ``Lab.clear_dead``).

Runs before the shared lab of conftest comes up (file order), and is skipped if a lab is up:
with one alive, every lab namespace counts as part of it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from vmha.lab.config import LabPaths
from vmha.lab.lab import Lab

pytestmark = pytest.mark.lab

NS = "vmha-ha9"  # a host name no lab of the suite uses


@pytest.fixture()
def stale_netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if Lab(log=lambda _m: None).leftovers()[0]:
        pytest.skip("a lab is up on this machine")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        yield NS
    finally:
        subprocess.run(["ip", "netns", "delete", NS], check=False)


def test_an_empty_lab_namespace_is_dead_and_one_with_a_process_is_alive(stale_netns: str, tmp_path: str) -> None:
    lab = Lab(paths=LabPaths(root=str(tmp_path)), log=lambda _m: None)
    alive, dead = lab.leftovers()
    assert stale_netns in dead
    assert not any(stale_netns in a for a in alive)
    sleeper = subprocess.Popen(["ip", "netns", "exec", stale_netns, "sleep", "60"])
    try:
        for _ in range(50):
            alive, dead = lab.leftovers()
            if any(stale_netns in a for a in alive):
                break
        assert any(f"netns {stale_netns} (PIDs [{sleeper.pid}" in a for a in alive), alive
        assert dead == []  # one piece alive: the whole lab is
    finally:
        sleeper.kill()
        sleeper.wait()


def test_clear_dead_deletes_the_dead_namespace_only(stale_netns: str, tmp_path: str) -> None:
    lab = Lab(paths=LabPaths(root=str(tmp_path)), log=lambda _m: None)
    before = set(_netns())
    lab.clear_dead(lab.leftovers()[1])
    after = set(_netns())
    assert stale_netns not in after
    assert after == before - {stale_netns}


def _netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def test_a_name_left_under_run_netns_by_a_restart_is_dead(tmp_path: str) -> None:
    """/run/netns on disk: after a restart a namespace's name is a plain file, no namespace."""
    if os.geteuid() != 0:
        pytest.skip("/run/netns needs root")
    if Lab(log=lambda _m: None).leftovers()[0]:
        pytest.skip("a lab is up on this machine")
    os.makedirs("/run/netns", exist_ok=True)
    stale = "/run/netns/vmha-ha8"
    open(stale, "w").close()
    try:
        lab = Lab(paths=LabPaths(root=str(tmp_path)), log=lambda _m: None)
        alive, dead = lab.leftovers()
        assert alive == [] and "vmha-ha8" in dead
        lab.clear_dead(dead)
        assert not os.path.exists(stale)
    finally:
        if os.path.exists(stale):
            os.unlink(stale)
