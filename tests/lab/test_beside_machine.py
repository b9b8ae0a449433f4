"""The whole demo next to the machine's own libvirtd and a running guest, as our users run it.

Runs before the shared lab of conftest comes up (file order): run_demo brings its own lab up
and down.  The machine's libvirtd uses the machine's default paths (/run/libvirt,
/var/lib/libvirt, /etc/libvirt); it runs in a mount namespace of its own only so /dev/kvm can
be masked and a qemu.conf with ``namespaces = [ ]`` laid over the machine's, which is not
edited.  Skipped when a libvirtd already runs on the machine: that one is not ours to start
or stop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
from vmha.lab import image
from vmha.lab.demo import run_demo
from vmha.lab.lab import wait_until
from vmha.ocf.runner import CommandRunner, find_program
from vmha.qemu_processes import qemu_processes

from tests.lab.conftest import AGENT

pytestmark = pytest.mark.lab

SOCKET = "/run/libvirt/libvirt-sock"
# what a libvirtd with the default paths writes on the machine: removed again afterwards
WRITES = ("/run/libvirt", "/run/libvirtd.pid", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt")
GUEST = "machine-guest"


def _tree() -> set[str]:
    found: set[str] = set()
    for top in WRITES:
        if os.path.lexists(top):
            found.add(top)
        for root, dirs, files in os.walk(top):
            found.update(os.path.join(root, n) for n in dirs + files)
    return found


def _guest_xml(img: image.GuestImage, guest_uuid: str, serial: str) -> str:
    return (
        f"<domain type='qemu'><name>{GUEST}</name><uuid>{guest_uuid}</uuid>"
        "<memory unit='MiB'>128</memory><vcpu>1</vcpu>"
        f"<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{img.kernel}</kernel>"
        f"<initrd>{img.initrd}</initrd><cmdline>console=ttyS0 quiet panic=-1</cmdline></os>"
        "<on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash><devices>"
        "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
        f"<serial type='file'><source path='{serial}'/><target port='0'/></serial>"
        "<memballoon model='none'/></devices></domain>"
    )


@pytest.fixture()
def machine_guest() -> Iterator[tuple[object, str]]:
    """A libvirtd on the machine's default paths and a transient TCG guest in it."""
    if os.geteuid() != 0:
        pytest.skip("lab tests need root")
    if os.path.exists(SOCKET):
        pytest.skip("a libvirtd already runs on this machine: not ours to start or stop")
    import libvirt

    img = image.ensure("/var/lib/vmha/lab/image", CommandRunner())
    before = _tree()
    work = tempfile.mkdtemp(prefix="vmha-beside-")
    os.chmod(work, 0o755)  # noqa: S103 - QEMU (libvirt-qemu) writes the serial log there
    qemu_conf = os.path.join(work, "qemu.conf")
    with open(qemu_conf, "w") as f:
        f.write('namespaces = [ ]\nstdio_handler = "file"\n')
    no_kvm = os.path.join(work, "no-kvm")
    open(no_kvm, "w").close()
    os.chmod(no_kvm, 0o600)
    empty = os.path.join(work, "empty")
    os.mkdir(empty)
    mounts = [f"mount --bind {qemu_conf} /etc/libvirt/qemu.conf"]
    if os.path.exists("/dev/kvm"):
        mounts.append(f"mount --bind {no_kvm} /dev/kvm")
    if os.path.isdir("/etc/libvirt/qemu/networks/autostart"):
        mounts.append(f"mount --bind {empty} /etc/libvirt/qemu/networks/autostart")  # no virbr0 left behind
    script = " && ".join([*mounts, f"exec {find_program('libvirtd')}"])
    daemon = subprocess.Popen(
        [find_program("unshare"), "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=open(os.path.join(work, "libvirtd.log"), "ab"),  # noqa: SIM115 - the child keeps it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    conn = None
    try:
        assert wait_until(lambda: os.path.exists(SOCKET) or daemon.poll() is not None, 60, 0.1)
        assert daemon.poll() is None, open(os.path.join(work, "libvirtd.log")).read()
        conn = wait_until(lambda: _open(libvirt), 30, 0.2)
        assert conn, "the machine's libvirtd does not answer"
        guest_uuid = str(uuid.uuid4())
        conn.createXML(_guest_xml(img, guest_uuid, os.path.join(work, "serial.log")), 0)
        yield conn, guest_uuid
    finally:
        if conn is not None:
            try:
                conn.lookupByName(GUEST).destroy()
            except libvirt.libvirtError:
                pass
            conn.close()
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(daemon.pid, signal.SIGKILL)
                daemon.wait(10)
        for path in sorted(_tree() - before, reverse=True):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)
        shutil.rmtree(work, ignore_errors=True)
        assert not os.path.exists(SOCKET)
        assert _tree() == before, f"left on the machine: {sorted(_tree() ^ before)}"


def _open(libvirt: object) -> object | None:
    try:
        return libvirt.open("qemu:///system")  # type: ignore[attr-defined]
    except libvirt.libvirtError:  # type: ignore[attr-defined]
        return None


def _qemu_pid(guest_uuid: str) -> int | None:
    return next((q.pid for q in qemu_processes() if q.uuid == guest_uuid), None)


def test_demo_beside_machine_libvirt(machine_guest: tuple[object, str], capsys: pytest.CaptureFixture[str]) -> None:
    import libvirt

    conn, guest_uuid = machine_guest
    assert wait_until(lambda: _qemu_pid(guest_uuid), 10, 0.1)
    pid = _qemu_pid(guest_uuid)
    # /run/netns may be on disk (it is here): a machine restarted under a lab keeps its
    # namespaces' names as plain files, which must not make the next lab "already up"
    stale = "/run/netns/vmha-ha1"
    if os.path.isdir("/run/netns") and not os.path.exists(stale):
        open(stale, "w").close()
    started = time.monotonic()
    rc = run_demo(AGENT)
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    print(out)
    assert rc == 0 and report["ok"] is True, report.get("error")
    assert report["double_run_seen"] is False and report["double_runs"] == [], report["double_runs"]
    assert report["down_clean"] is True
    # the database on the host whose plug was pulled: answering on the survivor, every
    # acknowledged commit there
    assert report["db_serving_again_s"] is not None and report["committed_rows_lost"] == 0, report["database"]
    assert report["committed_rows_acknowledged"] >= 100, report["database"]
    # the machine's guest ran through up, demo and down, untouched
    assert _qemu_pid(guest_uuid) == pid, "the machine's guest has another QEMU (or none)"
    dom = conn.lookupByUUIDString(guest_uuid)  # type: ignore[attr-defined]
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    names = {d.name() for d in conn.listAllDomains(0)}  # type: ignore[attr-defined]
    assert names == {GUEST}, f"lab domains in the machine's libvirt: {names - {GUEST}}"
    print(f"demo beside the machine's libvirtd: {time.monotonic() - started:.0f}s")
