"""The packaged agents on this machine's /usr/bin/python3 (Debian 11's 3.9 in tests/py39).

Run as root inside run.sh's namespace, after the .deb is installed: meta-data of every agent,
then validate-all and a probe/start/monitor/stop cycle of VirtualMachine against libvirt's
test driver, served by a private libvirtd (tmpfs over its state directories: this runs in a
mount namespace of its own). The test driver keeps a domain between processes only while a
client is connected, so this script holds a connection for the whole cycle. Prints one line
per check and a JSON summary; exits 1 on the first failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

OCF = "/usr/lib/ocf/resource.d/vmha"
AGENTS = ("VirtualMachine", "GuestService", "HypervisorHealth")
STATE_DIRS = ("/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt")
DOMAIN_XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>
"""
timings: dict[str, float] = {}


def agent(name: str, action: str, env: dict[str, str], expect: int) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    done = subprocess.run(
        [os.path.join(OCF, name), action], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    took = time.monotonic() - t0
    timings[f"{name} {action}"] = round(took, 3)
    ok = done.returncode == expect
    print(f"{'ok' if ok else 'FAIL'}: {name} {action}: rc {done.returncode} (want {expect}), {took:.2f} s", flush=True)
    if not ok:
        sys.stdout.write(done.stdout[-2000:] + done.stderr[-4000:] + "\n")
        sys.exit(1)
    return done


def start_libvirtd(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    for d in STATE_DIRS:
        os.makedirs(d, exist_ok=True)
        subprocess.run(["/bin/mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", d], check=True)
    sock_dir = os.path.join(directory, "sock")
    os.makedirs(sock_dir)
    conf = os.path.join(directory, "libvirtd.conf")
    with open(conf, "w") as fh:
        fh.write(
            f'unix_sock_dir = "{sock_dir}"\nunix_sock_rw_perms = "0700"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            f'log_outputs = "3:file:{directory}/libvirtd.log"\n'
        )
    log = open(os.path.join(directory, "daemon.out"), "wb")  # open as long as the daemon runs
    proc = subprocess.Popen(["/usr/sbin/libvirtd", "--config", conf], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    sock = os.path.join(sock_dir, "libvirt-sock")
    for _ in range(200):
        if os.path.exists(sock) or proc.poll() is not None:
            break
        time.sleep(0.05)
    if not os.path.exists(sock):
        with open(log.name) as fh:
            sys.exit("private libvirtd did not start: " + fh.read()[-2000:])
    return proc, f"test+unix:///default?socket={sock}"


def main() -> int:
    print(f"python {sys.version.split()[0]} ({sys.executable})", flush=True)
    from lxml import etree

    for name in AGENTS:
        done = agent(name, "meta-data", {"PATH": "/usr/bin:/bin"}, 0)
        doc = etree.fromstring(done.stdout.encode())
        assert doc.get("name") == name, doc.get("name")

    import libvirt

    tmp = tempfile.mkdtemp(prefix="vmha-smoke-")
    daemon, uri = start_libvirtd(tmp)
    try:
        holder = libvirt.open(uri)
        name = "vm-" + uuid.uuid4().hex[:8]
        config = os.path.join(tmp, name + ".xml")
        with open(config, "w") as fh:
            fh.write(DOMAIN_XML.format(name=name, uuid=uuid.uuid4()))
        cib = os.path.join(tmp, "cib.xml")
        with open(cib, "w") as fh:
            subprocess.run(["cibadmin", "--empty"], stdout=fh, check=True)
        subprocess.run(
            ["cibadmin", "--create", "-o", "resources", "--xml-text", f"<primitive id='{name}' class='ocf' "
             "provider='vmha' type='VirtualMachine'/>"],
            env={"CIB_file": cib, "PATH": "/usr/sbin:/usr/bin"},
            check=True,
        )  # fmt: skip

        def env(interval_ms: int = 10000) -> dict[str, str]:
            return {
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "OCF_ROOT": "/usr/lib/ocf",
                "OCF_RA_VERSION_MAJOR": "1",
                "OCF_RA_VERSION_MINOR": "1",
                "OCF_RESOURCE_INSTANCE": name,
                "OCF_RESOURCE_TYPE": "VirtualMachine",
                "OCF_RESOURCE_PROVIDER": "vmha",
                "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
                "OCF_RESKEY_CRM_meta_timeout": "20000",
                "OCF_RESKEY_config": config,
                "OCF_RESKEY_hypervisor": uri,
                "HA_RSCTMP": os.path.join(tmp, "rsctmp"),
                "CIB_file": cib,
            }

        vm = "VirtualMachine"
        agent(vm, "validate-all", env(), 0)
        agent(vm, "monitor", env(interval_ms=0), 7)
        agent(vm, "start", env(), 0)
        state = holder.lookupByName(name).state()[0]
        assert state == libvirt.VIR_DOMAIN_RUNNING, state
        agent(vm, "monitor", env(), 0)
        agent(vm, "stop", env(), 0)
        agent(vm, "monitor", env(), 7)
        holder.close()
    finally:
        daemon.terminate()
        daemon.wait(10)
    print(json.dumps({"python": sys.version.split()[0], "agent_seconds": timings}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
