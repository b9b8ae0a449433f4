"""Bring a lab up, look at it, take it down.

``Lab.up`` builds (or reuses) the guest image, prepares every host's private files and a
seeded CIB, creates the namespaces, starts the power switch, powers the hosts on and waits
for an online cluster with its fence device started; then it creates the VM resources with
pcs exactly as a user would.  ``Lab.down`` stops only what the state file says we started.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import vmha
from vmha.lab import events, guest, image, net, nodefiles, proc, storage
from vmha.lab.cluster import ClusterStatus, parse_crm_mon
from vmha.lab.config import (
    AGENTS,
    DISK_MIB,
    FENCE_AGENT_PATH,
    LAN_NETNS,
    NETNS_PREFIX,
    VM_PRIORITY,
    LabConfig,
    LabPaths,
    node_netns,
)
from vmha.lab.power import PowerClient
from vmha.lab.state import LabState
from vmha.ocf.runner import CommandRunner, CommandTimedOut, Completed, find_program

T = TypeVar("T")

ONLINE_TIMEOUT_S = 90.0
VM_START_TIMEOUT_S = 120.0
FENCE_AGENT_MARK = "fence_vmhalab: fence agent for ``vmha lab`` hosts"
OCF_ROOT = "/usr/lib/ocf/resource.d"


class LabError(Exception):
    """Something the operator must hear about; ``str()`` says what and what to do."""


class LabBusy(LabError):
    pass


def wait_until(check: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """Poll ``check`` until it returns something truthy or ``timeout`` passes."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= end:
            return None
        time.sleep(interval)


def _lib_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(vmha.__file__)))


class Lab:
    def __init__(
        self,
        paths: LabPaths | None = None,
        runner: CommandRunner | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.paths = paths or LabPaths()
        self.runner = runner or CommandRunner()
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.state = LabState.load(self.paths.state_file) or LabState()
        self.power = PowerClient(self.paths.power_socket)

    # -- inspection ------------------------------------------------------------------------

    def running(self) -> bool:
        """True while any piece of a lab is still there (switch, host, namespace)."""
        alive, dead = self.leftovers()
        return bool(alive or dead)

    def leftovers(self) -> tuple[list[str], list[str]]:
        """What of a lab is still there: (pieces alive, dead namespaces).

        Alive: the power switch, a host's init, or a process in a lab namespace; that is a lab
        somebody runs.  Dead: a lab namespace nothing runs in any more, left by a lab whose
        ``vmha lab`` process (or machine) was killed before it could come down."""
        alive: list[str] = []
        p = self.state.power_proc
        if p and proc.alive(p):
            alive.append(f"power switch PID {p.pid}")
        alive += [f"host init PID {i.pid}" for i in self._recorded_inits() if proc.alive(i)]
        dead: list[str] = []
        ours = {LAN_NETNS, *(node_netns(h) for h in self.state.hosts)}
        for ns in net.existing_netns(self.runner):
            if ns in ours or ns.startswith(NETNS_PREFIX + "ha"):
                ino = proc.netns_inode(ns)
                pids = proc.pids_in_netns(ino) if ino else []
                if pids:
                    alive.append(f"netns {ns} (PIDs {pids[:5]})")
                else:
                    dead.append(ns)
        # one piece alive and the whole lab is (the LAN namespace of a running lab is empty)
        return (alive, []) if alive else ([], dead)

    def clear_dead(self, netns: list[str]) -> None:
        """Delete lab namespaces nothing runs in (``leftovers``), and nothing else."""
        self.log(f"clearing what a lab that died left behind: netns {', '.join(netns)}")
        failed = net.delete(self.runner, sorted(netns))
        if failed:
            raise LabError(f"cannot delete netns {', '.join(failed)} left by a lab that died")

    @property
    def hosts(self) -> list[str]:
        return list(self.state.hosts)

    def host_pid(self, host: str) -> int:
        """Host PID of ``host``'s init, 0 when it is off."""
        return self.power.pid(host)

    def exec(
        self, host: str, argv: Sequence[str], timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> Completed:
        """Run ``argv`` inside ``host`` (all its namespaces). Raises LabError if it is off, or
        not ready: before its init mounted its own /run, a command there (virsh, crm_mon) would
        talk to the machine's daemons."""
        pid = self.host_pid(host)
        if not pid:
            raise LabError(f"host {host} is off")
        if proc.host_root(pid, host) is None:
            raise LabError(f"host {host} is not ready (its own /run is not mounted yet)")
        return self.runner.run(
            ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--", find_program(argv[0]), *argv[1:]],
            timeout=timeout,
            env_extend=env,
        )

    def exec_interactive(self, host: str, argv: Sequence[str]) -> int:
        """Run ``argv`` inside ``host`` with this terminal (stdin, stdout, stderr) and no
        timeout: a person's command (``vmha lab exec``).  Its exit code; raises LabError when
        the host is unknown, off or not ready."""
        import subprocess

        if host not in self.hosts:
            known = ", ".join(self.hosts) or "none: the lab is not up"
            raise LabError(f"no lab host {host!r} (hosts: {known})")
        pid = self.host_pid(host)
        if not pid:
            raise LabError(f"host {host} is off")
        if proc.host_root(pid, host) is None:
            raise LabError(f"host {host} is not ready (its own /run is not mounted yet)")
        nsenter = find_program("nsenter")
        # the command is looked up on PATH inside the host (nsenter execs it there)
        return subprocess.call([nsenter, "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--", *argv])  # noqa: S603

    def online_host(self, prefer: str | None = None) -> str | None:
        order = ([prefer] if prefer else []) + [h for h in self.hosts if h != prefer]
        for h in order:
            if self.host_pid(h):
                return h
        return None

    def crm(self, host: str | None = None) -> ClusterStatus | None:
        """Cluster status as seen from ``host`` (or any host that is on); None if unknown."""
        h = host or self.online_host()
        if not h:
            return None
        try:
            done = self.exec(h, ["crm_mon", "-1", "--output-as=xml"], timeout=15)
            return parse_crm_mon(done.stdout) if done.stdout.strip() else None
        except (LabError, ValueError, OSError, CommandTimedOut):
            return None

    def pcs(self, *args: str, host: str | None = None, timeout: float = 120.0) -> Completed:
        h = host or self.online_host()
        if not h:
            raise LabError("no lab host is on")
        done = self.exec(h, ["pcs", *args], timeout=timeout)
        if not done.ok:
            raise LabError(f"pcs {' '.join(args)} failed on {h}: {(done.stderr or done.stdout).strip()}")
        return done

    def crm_mon_text(self, host: str | None = None) -> str:
        h = host or self.online_host()
        if not h:
            return "(no lab host is on)\n"
        return self.exec(h, ["crm_mon", "-1"], timeout=15).stdout

    def status_text(self) -> str:
        if not self.running():
            return "no lab is up\n"
        try:
            switch = self.power.request("list", 5.0)
        except OSError as exc:
            switch = f"power switch unreachable ({exc})"
        return f"power: {switch}\nagent: {AGENTS.get(self.state.agent)}\n\n" + self.crm_mon_text()

    # -- up --------------------------------------------------------------------------------

    def up(self, cfg: LabConfig, *, replace: bool = False) -> dict[str, float]:
        """Raises LabBusy when a lab is already up (unless ``replace``), LabError on failure
        (after taking down whatever was brought up)."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, mounts, daemons)")
        alive, dead = self.leftovers()
        if alive:
            if not replace:
                raise LabBusy(f"a lab is already up ({', '.join(alive)}): `vmha lab down` first, or use --replace")
            self.log("replacing the lab that is up")
            self.down()
        elif dead:
            self.clear_dead(dead)
        if cfg.vms and cfg.agent == "vmha" and not os.path.exists(os.path.join(OCF_ROOT, "vmha", "VirtualMachine")):
            raise LabError("ocf:vmha:VirtualMachine is not installed (make install), or use --agent heartbeat")
        self.paths = cfg.paths
        try:
            return self._up(cfg)
        except BaseException:
            self.log("lab up failed: taking down what was brought up")
            self.down()
            raise

    def _up(self, cfg: LabConfig) -> dict[str, float]:
        t: dict[str, float] = {}
        t0 = time.monotonic()
        img = image.ensure(self.paths.image_dir, self.runner, self.log)
        t["image_s"] = time.monotonic() - t0

        run = self.paths.run_dir
        if os.path.exists(run):
            self._keep_qemu_caps(cfg.node_names[0])
            shutil.rmtree(run)
        for d in (run, self.paths.vm_dir, self.paths.log_dir, self.paths.storage_dir, self.paths.shared_dir):
            os.makedirs(d, mode=0o755)
        os.makedirs(self.paths.lease_dir, mode=0o700)
        events.install(self.paths.alert_agent, self.paths.events_file, nodefiles.hacluster_ids())
        os.chmod(self.paths.root, 0o755)  # noqa: S103 - QEMU (libvirt-qemu) reads guest files
        self.state = LabState(hosts=cfg.node_names, agent=cfg.agent, token_ms=cfg.token_ms)
        self._save()

        self._install_fence_agent()
        t1 = time.monotonic()
        seed = os.path.join(run, "cib-seed.xml")
        nodefiles.seed_cib(self.runner, seed, cfg)
        for i, host in enumerate(cfg.node_names, start=1):
            nodefiles.prepare(cfg, host, i, seed)

        self.state.netns = [LAN_NETNS, *(node_netns(h) for h in cfg.node_names)]
        self._save()
        net.create_lan(self.runner)
        for i, host in enumerate(cfg.node_names, start=1):
            net.create_host(self.runner, host, i)
        t["prepare_s"] = time.monotonic() - t1

        t2 = time.monotonic()
        self._start_power(cfg.node_names)
        for host in cfg.node_names:
            reply = self.power.request(f"on {host}", 30.0)
            if not reply.startswith("ON"):
                raise LabError(f"power on {host}: {reply}")
        want = sorted(cfg.node_names)
        if not wait_until(
            lambda: (s := self.crm()) and s.online() == want and s.started_on("fence-lab"), ONLINE_TIMEOUT_S, 0.2
        ):
            raise LabError(
                f"cluster not online with fencing after {ONLINE_TIMEOUT_S:.0f}s; "
                f"see {self.paths.node_dir(cfg.node_names[0])}/var-log-pacemaker"
            )
        t["cluster_online_s"] = time.monotonic() - t2
        self.log(f"cluster online: {', '.join(want)} in {t['cluster_online_s']:.1f}s")

        if cfg.vms:
            t3 = time.monotonic()
            names = [f"vm{i}" for i in range(1, cfg.vms + 1)]
            for i, name in enumerate(names):
                self.create_vm(name, img, prefer=cfg.node_names[i % cfg.nodes])
            if not wait_until(
                lambda: (s := self.crm()) and all(s.started_on(n) for n in names), VM_START_TIMEOUT_S, 0.2
            ):
                raise LabError(f"VMs not Started after {VM_START_TIMEOUT_S:.0f}s")
            t["vms_started_s"] = time.monotonic() - t3
            self.log(f"{len(names)} VMs Started in {t['vms_started_s']:.1f}s")
        t["up_s"] = time.monotonic() - t0
        self.state.timings = {k: round(v, 2) for k, v in t.items()}
        self._save()
        return self.state.timings

    def _keep_qemu_caps(self, host: str) -> None:
        """Keep what the last lab's first host probed (see LabPaths.qemu_caps_dir)."""
        probed = os.path.join(self.paths.node_dir(host), "var-cache-libvirt", "qemu", "capabilities")
        if not os.path.isdir(probed) or not os.listdir(probed):
            return
        keep = self.paths.qemu_caps_dir
        tmp = keep + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(probed, tmp)
        shutil.rmtree(keep, ignore_errors=True)
        os.replace(tmp, keep)

    def events(self, since: float = 0.0) -> list[events.Event]:
        """What the cluster's controllers reported since ``since`` (vmha.lab.events)."""
        return events.read(self.paths.events_file, since)

    def create_vm(
        self,
        name: str,
        img: image.GuestImage,
        *,
        prefer: str | None = None,
        score: int = 50,
        params: Sequence[str] = (),
        ops: Sequence[str] = (),
        agent: str | None = None,
        monitor: Sequence[str] = ("interval=10s", "timeout=30s"),
        emulator: str = guest.EMULATOR,
        data_disk: str | None = None,
        memory_mib: int = guest.MEMORY_MIB,
    ) -> str:
        """Define VM resource ``name`` with pcs, as the README tells a user to; returns the
        path of its domain XML.  ``monitor``: the monitor operation's attributes.  The VM
        gets a new disk on the shared storage (vmha.lab.storage), and a second one there
        when ``data_disk`` names the shared path of an image already made for it."""
        storage.create_disk(self.paths.disk_image(name), DISK_MIB, nodefiles.qemu_ids())
        xml_path = os.path.join(self.paths.vm_dir, f"{name}.xml")
        xml = guest.domain_xml(
            name,
            img,
            self.paths.vm_dir,
            emulator,
            disk=self.paths.disk_path(name),
            data_disk=data_disk,
            memory_mib=memory_mib,
        )
        with open(xml_path, "w") as f:
            f.write(xml)
        create = [
            "resource",
            "create",
            name,
            AGENTS[agent or self.state.agent],
            f"config={xml_path}",
            "hypervisor=qemu:///system",
            "migration_transport=tcp",
            "remoteuri=qemu+tcp://%n/system",
            "migrateuri=tcp://%n",
            *params,
            "meta",
            "allow-migrate=true",
            # what priority-fencing-delay weighs (vmha.lab.partition)
            f"priority={VM_PRIORITY}",
            "op",
            "monitor",
            *monitor,
            *ops,
            # disabled until its location preference exists, or it lands wherever is
            # first free and stickiness (100) keeps it there
            "--disabled",
        ]
        steps = [create]
        if prefer:
            steps.append(["constraint", "location", name, "prefers", f"{prefer}={score}"])
        steps.append(["resource", "enable", name])
        for args in steps:
            self.log("# pcs " + shlex.join(args))
            self.pcs(*args)
        self.state.vms.append(name)
        self._save()
        return xml_path

    def delete_vm(self, name: str, timeout: float = 120.0) -> None:
        """Stop and remove VM resource ``name`` (pcs waits for the stop)."""
        self.pcs("resource", "delete", name, timeout=timeout)
        if name in self.state.vms:
            self.state.vms.remove(name)
            self._save()

    def _save(self) -> None:
        os.makedirs(self.paths.run_dir, exist_ok=True)
        self.state.save(self.paths.state_file)

    def _install_fence_agent(self) -> None:
        from vmha.lab import fence_agent

        # recorded first: a half-written copy must be removed by down() too
        self.state.fence_agent = FENCE_AGENT_PATH
        self._save()
        tmp = FENCE_AGENT_PATH + ".vmha-tmp"
        shutil.copyfile(fence_agent.__file__, tmp)
        os.chmod(tmp, 0o755)  # noqa: S103 - a fence agent: hacluster runs it for metadata
        os.replace(tmp, FENCE_AGENT_PATH)

    def _start_power(self, hosts: list[str]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = _lib_root()
        with open(os.path.join(self.paths.log_dir, "power.log"), "ab") as out:
            p = subprocess.Popen(
                [sys.executable, "-m", "vmha.lab.power", "--root", self.paths.root, "--hosts", ",".join(hosts)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        ident = proc.identify(p.pid)
        if ident is None:
            raise LabError("power switch exited at once (see run/log/power.log)")
        self.state.power = ident.to_json()
        self._save()
        if not wait_until(lambda: os.path.exists(self.paths.power_socket), 10.0, 0.05):
            raise LabError("power switch did not open its socket (see run/log/power.log)")

    # -- down ------------------------------------------------------------------------------

    def _recorded_inits(self) -> list[proc.ProcId]:
        inits = []
        nodes = os.path.join(self.paths.run_dir, "nodes")
        for host in os.listdir(nodes) if os.path.isdir(nodes) else []:
            try:
                with open(os.path.join(nodes, host, "init.json")) as f:
                    inits.append(proc.ProcId.from_json(json.load(f)["init"]))
            except (OSError, ValueError, KeyError):
                continue
        return inits

    def down(self) -> list[str]:
        """Stop everything this lab started; returns what could not be cleaned (empty = ok).

        A second Ctrl-C or SIGTERM while this runs is held back until it is done: an
        interrupted teardown is what leaves namespaces and QEMU processes behind.
        """
        if threading.current_thread() is not threading.main_thread():
            return self._down()
        held: list[int] = []
        old = {sig: signal.signal(sig, lambda n, _f: held.append(n)) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._down()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            if held:
                raise KeyboardInterrupt

    def _down(self) -> list[str]:
        t0 = time.monotonic()
        problems = self._teardown()
        self.log(f"lab down in {time.monotonic() - t0:.1f}s" + (f": {problems}" if problems else ""))
        return problems

    def _teardown(self) -> list[str]:
        problems: list[str] = []
        power = self.state.power_proc
        if power and proc.alive(power):
            try:
                self.power.request("quit", 30.0)
            except OSError:
                pass
            if not proc.wait_gone([power], 5.0):
                proc.kill_hard([power])
        # hosts whose switch died before it could pull their plug
        if not proc.kill_hard(self._recorded_inits()):
            problems.append("some host init did not die")

        names = set(self.state.netns)
        names.update(
            ns for ns in net.existing_netns(self.runner) if ns == LAN_NETNS or ns.startswith(NETNS_PREFIX + "ha")
        )
        # a pulled plug kills a host's processes asynchronously: wait until the
        # namespaces are empty, so no QEMU outlives the lab
        inodes = [i for i in (proc.netns_inode(ns) for ns in names) if i]
        if not wait_until(lambda: not any(proc.pids_in_netns(i) for i in inodes), 20.0, 0.1):
            left = [p for i in inodes for p in proc.pids_in_netns(i)]
            problems.append(f"processes still in lab namespaces (not ours to kill): {left}")
        problems += [f"cannot delete netns {ns}" for ns in net.delete(self.runner, sorted(names))]

        fa = self.state.fence_agent or FENCE_AGENT_PATH
        for path in (fa, fa + ".vmha-tmp"):
            if _is_our_fence_agent(path):
                os.unlink(path)
        if os.path.exists(self.paths.power_socket):
            os.unlink(self.paths.power_socket)
        if os.path.exists(self.paths.state_file):
            os.unlink(self.paths.state_file)
        self.state = LabState()
        return problems


def _is_our_fence_agent(path: str) -> bool:
    try:
        with open(path) as f:
            return FENCE_AGENT_MARK in f.read(4096)
    except OSError:
        return False
