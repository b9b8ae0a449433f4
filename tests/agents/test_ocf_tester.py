"""resource-agents' own ``ocf-tester`` passes on VirtualMachine, against a real libvirtd and a
real QEMU domain.

The daemon is private (tests/support/qemulibvirtd.py: own mount namespace, state directories,
/etc/libvirt copy and socket; /dev/kvm masked, so the guest is TCG).  The guest has no disk and
no network: SeaBIOS finds nothing to boot and keeps running, which is all a monitor needs, but
no OS answers ACPI, so a graceful shutdown cannot succeed.  ``force_stop=true`` makes every stop
an immediate destroy; with a graceful stop each of ocf-tester's stops of a running VM would wait
until shortly before the operation's timeout and then force it off.

``-o CRM_meta_timeout=6000`` gives every action a 6 s timeout instead of ocf-tester's 20 s (its
``-o`` sets OCF_RESKEY_<name>, after its own export): ocf-tester calls migrate_from with no
migration under way, and the agent rightly waits for the domain to arrive until shortly before
the timeout (17.4 s of a 25.5 s run at 20 s; 4.8 s of 11.6 s at 6 s).  Start takes ~2.5 s.
ocf-tester checks, in order: permissions (meta-data as nobody), meta-data against ra-api-1.dtd
(xmllint --valid), validate-all, monitor/probe of a stopped resource (also with the binaries
"missing"), start, monitor, probe, notify, promote/demote (absent: optional), stop, restart,
start of a started and stop of a stopped resource, migrate_to/migrate_from and reload if
present (neither result is judged).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from tests.support.agent import AGENT_DIR
from tests.support.qemulibvirtd import qemu_libvirtd

OCF_TESTER = "/usr/sbin/ocf-tester"
AGENT = os.path.join(AGENT_DIR, "VirtualMachine")
EMULATOR = "/usr/bin/qemu-system-x86_64"
OP_TIMEOUT_MS = 6000
TESTER_TIMEOUT_S = 120

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a private libvirtd running QEMU needs root (make test runs as root)"),
]

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{emulator}</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
"""


@pytest.fixture
def workdir():
    # short: the daemon's unix socket path must stay under 108 bytes
    directory = tempfile.mkdtemp(prefix="vmha-ocft-", dir="/tmp")  # noqa: S108
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _destroy_leftover(uri: str, name: str) -> None:
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # a missing domain is the usual case
    conn = libvirt.open(uri)
    try:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            return
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefine()
    finally:
        conn.close()


def test_ocf_tester_passes_on_virtual_machine(workdir):
    for path in (OCF_TESTER, EMULATOR, "/usr/sbin/libvirtd"):
        assert os.path.exists(path), f"{path} missing: make deps installs it"
    name = f"vmha-ocft-{os.getpid()}"
    config = os.path.join(workdir, f"{name}.xml")
    with open(config, "w") as fh:
        fh.write(DOMAIN_XML.format(name=name, uuid=uuid.uuid4(), emulator=EMULATOR))
    with qemu_libvirtd(os.path.join(workdir, "d")) as sock:
        uri = f"qemu+unix:///system?socket={sock}"
        rsctmp = os.path.join(workdir, "rsctmp")
        os.makedirs(rsctmp)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "HA_RSCTMP": rsctmp}
        argv = [OCF_TESTER, "-n", "vm-test", "-o", f"config={config}", "-o", f"hypervisor={uri}"]
        argv += ["-o", "force_stop=true", "-o", f"CRM_meta_timeout={OP_TIMEOUT_MS}", AGENT]
        began = time.monotonic()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TESTER_TIMEOUT_S)
        finally:
            _destroy_leftover(uri, name)
        seconds = time.monotonic() - began
    out = done.stdout + done.stderr
    print(out, f"ocf-tester took {seconds:.1f} s")
    assert done.returncode == 0, out
    assert f"{AGENT} passed all tests" in done.stdout, out
    assert "* rc=" not in out, out
