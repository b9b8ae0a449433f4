#!/usr/bin/python3
"""Monitor cost: ocf:vmha:VirtualMachine against ocf:heartbeat:VirtualDomain on the same domain.

The monitor runs every few seconds per VM, each time as a fresh process, so its start-up is
our hot path. This runs both agents' ``monitor`` alternately, run by run, on one domain and
prints the median wall time, p10/p90, the median CPU time per call and the ratio
ours/VirtualDomain against the goal (at most 0.35x). Speed is measured here, not asserted in
tests.

How it is made fair:
  - Each agent runs as its own executable (its shebang, not this interpreter) with the
    environment Pacemaker would give it and nothing from ours: PATH, the OCF variables, its
    own HA_RSCTMP (kept across runs, as /run/resource-agents is on a node) and CIB_file.
  - Both publish utilization by default through crm_resource, which fails with no cluster.
    Each agent gets an offline CIB (``cibadmin --empty`` plus a primitive with the resource's
    id) through CIB_file, so crm_resource does the real work. A second scenario turns
    utilization off for both.
  - The libvirt test driver loads the node XML in every process, so the domain is running in
    each monitor without a daemon. A domain running under qemu:///system is measured too
    when there is one; libvirtd's own work is then not in the CPU column.
  - Warm-up runs first; the order of the two agents flips every run.
  - CPU time comes from os.wait4's rusage of the agent, which includes the children it
    waited for (virsh, crm_resource, sed, ...).

Run: ``cd /work/main && .venv/bin/python bench/monitor.py [--runs N] [--agent PATH] [--json]``.
With ``--json`` one object is the last line, the same keys when the bench stops on an error
(bench/reports.py: a figure not measured is null; a scenario not judged has verdict INVALID).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from xml.sax.saxutils import quoteattr

import reports  # bench/reports.py: the figures, unknown kept null

ROOT = Path(__file__).resolve().parent.parent
OURS = str(ROOT / "agents" / "VirtualMachine")
VIRTUALDOMAIN = "/usr/lib/ocf/resource.d/heartbeat/VirtualDomain"
PYTHON = "/usr/bin/python3"
VIRSH = "/usr/bin/virsh"
SYSTEM_DIRS = "/usr/sbin:/usr/bin:/sbin:/bin"
OCF_ROOT = "/usr/lib/ocf"

GOAL = 0.35
RESOURCE_ID = "vmha-bench"
DOMAIN_NAME = "vmha-bench-vm"
DOMAIN_UUID = "3d0e6f54-8f5b-4a38-9c55-2b2a1f0c7e11"
DOMAIN_VCPUS = 2
DOMAIN_MEMORY_KIB = 1048576
REAL_URI = "qemu:///system"

CPUS = os.cpu_count() or 1
RUN_TIMEOUT_S = 60  # an agent that hangs this long is killed and shows up as rc -9
UTILIZATION_OFF = {f"autoset_utilization_{k}": "false" for k in ("cpu", "hv_memory", "host_memory")}


class BenchError(Exception):
    """Something the figures cannot be trusted without; main prints it and exits 1."""


# -- running one process ---------------------------------------------------------------------


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float
    rc: int


class Spawner:
    """Runs a command to completion and measures it; SIGALRM kills a run that hangs."""

    def __init__(self, stderr_path: Path) -> None:
        self._pgid = 0
        self._stderr = open(stderr_path, "w+b")  # kept open for the whole bench
        signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, _signum: int, _frame: FrameType | None) -> None:
        if self._pgid:
            try:
                os.killpg(self._pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def run(self, argv: Sequence[str], env: dict[str, str]) -> Sample:
        self._stderr.seek(0)
        self._stderr.truncate()
        signal.alarm(RUN_TIMEOUT_S)
        start = time.perf_counter()
        # process_group=0: its own process group, so a timeout kills the agent's children too.
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            process_group=0,
        )
        self._pgid = proc.pid
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: the agent is in its own process group, it would stay
            signal.alarm(0)
            self._on_alarm(signal.SIGKILL, None)
            self._pgid = 0
            proc.wait()
            raise
        wall = time.perf_counter() - start
        self._pgid = 0
        signal.alarm(0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        return Sample(wall * 1000.0, (usage.ru_utime + usage.ru_stime) * 1000.0, proc.returncode)

    def last_stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")


def capture(argv: Sequence[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """An untimed helper run (setup and checks); the caller judges its return code."""
    return subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=timeout)


# -- what is measured --------------------------------------------------------------------------


@dataclass
class Command:
    label: str
    argv: list[str]
    env: dict[str, str]
    samples: list[Sample] = field(default_factory=list)
    failure: str = ""  # stderr of the first timed run that did not return 0

    def summary(self) -> dict[str, Any]:
        """reports.sample_summary: null figures when no timed run got done."""
        return reports.sample_summary(
            [s.wall_ms for s in self.samples], [s.cpu_ms for s in self.samples], [s.rc for s in self.samples]
        )


def measure(spawner: Spawner, commands: list[Command], runs: int, warmup: int) -> None:
    """Runs the commands in turn, flipping their order every round; warm-up rounds are dropped."""
    for i in range(warmup + runs):
        order = commands if i % 2 == 0 else commands[::-1]
        for cmd in order:
            sample = spawner.run(cmd.argv, cmd.env)
            if i >= warmup:
                cmd.samples.append(sample)
                if sample.rc != 0 and not cmd.failure:
                    cmd.failure = f"rc {sample.rc}: {spawner.last_stderr().strip() or '(no stderr)'}"


# -- the domain, the CIB and the agents' environment -----------------------------------------


def domain_xml(domain_type: str) -> str:
    return (
        f"<domain type='{domain_type}'>\n"
        f"  <name>{DOMAIN_NAME}</name>\n"
        f"  <uuid>{DOMAIN_UUID}</uuid>\n"
        f"  <memory unit='KiB'>{DOMAIN_MEMORY_KIB}</memory>\n"
        f"  <vcpu>{DOMAIN_VCPUS}</vcpu>\n"
        "  <os><type>hvm</type></os>\n"
        "</domain>\n"
    )


def write_test_domain(tmp: Path) -> tuple[str, Path]:
    """A test-driver node with the domain running, and the same domain as ``config``."""
    node = tmp / "test-node.xml"
    node.write_text("<node>\n" + domain_xml("test") + "</node>\n")
    config = tmp / f"{DOMAIN_NAME}.xml"
    config.write_text(domain_xml("test"))
    return f"test://{node}", config


def tool(name: str) -> str:
    path = shutil.which(name, path=SYSTEM_DIRS)
    if path is None:
        raise BenchError(f"{name} not found in {SYSTEM_DIRS} (package pacemaker-cli-utils)")
    return path


def make_cib(path: Path, provider: str, agent_type: str) -> None:
    """An offline CIB holding one primitive with our resource id, for crm_resource to edit."""
    env = {"PATH": SYSTEM_DIRS, "LC_ALL": "C"}
    done = capture([tool("cibadmin"), "--empty"], env, 30)
    if done.returncode != 0:
        raise BenchError(f"cibadmin --empty failed (rc {done.returncode}): {done.stderr.strip()}")
    path.write_text(done.stdout)
    primitive = (
        f"<primitive id={quoteattr(RESOURCE_ID)} class='ocf' "
        f"provider={quoteattr(provider)} type={quoteattr(agent_type)}/>"
    )
    create = [tool("cibadmin"), "--create", "-o", "resources", "--xml-text", primitive]
    done = capture(create, env | {"CIB_file": str(path)}, 30)
    if done.returncode != 0:
        raise BenchError(f"cibadmin --create in {path} failed (rc {done.returncode}): {done.stderr.strip()}")


def cib_utilization(cib: Path, key: str) -> str:
    done = capture(
        [tool("crm_resource"), "-r", RESOURCE_ID, "-z", "-g", key],
        {"PATH": SYSTEM_DIRS, "LC_ALL": "C", "CIB_file": str(cib)},
        30,
    )
    return done.stdout.strip() if done.returncode == 0 else f"<crm_resource rc {done.returncode}>"


def agent_env(hypervisor: str, config: Path, rsc_tmp: Path, cib: Path, params: dict[str, str]) -> dict[str, str]:
    """What Pacemaker's executor would pass a monitor with a 10 s interval and a 30 s timeout."""
    env = {
        "PATH": SYSTEM_DIRS,
        "OCF_ROOT": OCF_ROOT,
        "OCF_RESOURCE_INSTANCE": RESOURCE_ID,
        "OCF_RESKEY_config": str(config),
        "OCF_RESKEY_hypervisor": hypervisor,
        "OCF_RESKEY_CRM_meta_interval": "10000",
        "OCF_RESKEY_CRM_meta_timeout": "30000",
        "HA_RSCTMP": str(rsc_tmp),
        "CIB_file": str(cib),
    }
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    return env


@dataclass
class Scenario:
    name: str
    hypervisor: str
    config: Path
    params: dict[str, str]
    expected_vcpus: str  # what crm_resource must read back after a monitor with utilization on
    commands: list[Command] = field(default_factory=list)

    @property
    def utilization_on(self) -> bool:
        return self.params.get("autoset_utilization_cpu", "true") == "true"


def prepare(scenario: Scenario, agents: list[tuple[str, str, str]], tmp: Path) -> None:
    """One CIB and one HA_RSCTMP per agent; each agent's monitor must answer 0 once.

    Raises BenchError with the agent's stderr when it does not.
    """
    slug = "".join(c if c.isalnum() else "-" for c in scenario.name)
    for label, path, provider in agents:
        where = tmp / slug / label
        rsc_tmp = where / "rsctmp"
        rsc_tmp.mkdir(parents=True)
        cib = where / "cib.xml"
        make_cib(cib, provider, label)
        env = agent_env(scenario.hypervisor, scenario.config, rsc_tmp, cib, scenario.params)
        cmd = Command(label, [path, "monitor"], env)
        try:
            done = capture(cmd.argv, env, RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{scenario.name}: {label} monitor did not finish in {RUN_TIMEOUT_S}s") from None
        except OSError as exc:
            raise BenchError(f"{scenario.name}: cannot run {path}: {exc.strerror}") from None
        if done.returncode != 0:
            raise BenchError(
                f"{scenario.name}: {label} monitor returned {done.returncode}, not 0\n"
                f"--- stderr ---\n{done.stderr.rstrip()}\n--- stdout ---\n{done.stdout.rstrip()}"
            )
        if scenario.utilization_on:
            cpu = cib_utilization(cib, "cpu")
            if cpu != scenario.expected_vcpus:
                raise BenchError(
                    f"{scenario.name}: after {label}'s monitor, crm_resource -z -g cpu on {cib} "
                    f"gives {cpu!r}, not {scenario.expected_vcpus!r}\n--- stderr ---\n{done.stderr.rstrip()}"
                )
        scenario.commands.append(cmd)


# -- a real libvirtd ---------------------------------------------------------------------------


def find_real_domain(tmp: Path) -> tuple[str, Path, str] | str:
    """(name, inactive config, vCPUs) of a domain running under qemu:///system, or why not."""
    try:
        return _real_domain(tmp)
    except FileNotFoundError:
        return f"{VIRSH} is not installed"
    except subprocess.TimeoutExpired as exc:
        return f"{' '.join(map(str, exc.cmd))} did not answer in {exc.timeout:g}s"


def _real_domain(tmp: Path) -> tuple[str, Path, str] | str:
    env = {"PATH": SYSTEM_DIRS, "LC_ALL": "C"}
    done = capture([VIRSH, "-c", REAL_URI, "list", "--name"], env, 5)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return f"virsh -c {REAL_URI} list failed (rc {done.returncode}): {lines[-1] if lines else 'no message'}"
    names = sorted(n for n in done.stdout.split() if n)
    if not names:
        return f"no domain is running under {REAL_URI}"
    name = names[0]
    done = capture([VIRSH, "-c", REAL_URI, "dumpxml", "--inactive", name], env, 10)
    if done.returncode != 0:
        return f"virsh dumpxml --inactive {name} failed: {done.stderr.strip()}"
    config = tmp / f"real-{name}.xml"
    config.write_text(done.stdout)
    vcpus = capture([VIRSH, "-c", REAL_URI, "vcpucount", name, "--active", "--live"], env, 10)
    return name, config, vcpus.stdout.strip()


# -- output ------------------------------------------------------------------------------------


def tree_revision(agent: str) -> str | None:
    """``git describe --dirty`` of the checkout the agent runs from, or None (installed agent,
    no git, or git did not answer)."""
    if not agent.startswith(str(ROOT) + os.sep) or not (ROOT / ".git").exists():
        return None
    git = shutil.which("git", path=SYSTEM_DIRS)
    if git is None:
        return None
    try:
        done = capture([git, "-C", str(ROOT), "describe", "--always", "--dirty"], {"PATH": SYSTEM_DIRS}, 10)
    except subprocess.TimeoutExpired:
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def fmt_rc(rcs: list[int] | None) -> str:
    return "-" if rcs is None else ",".join(str(rc) for rc in rcs)


def fmt(value: float | None, width: int, digits: int) -> str:
    """A figure for the table; "-" (right-aligned) when it was not measured."""
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def print_table(
    baseline: list[Command],
    scenarios: list[Scenario],
    skipped: list[str],
    args: argparse.Namespace,
    load: tuple[float, float],
) -> None:
    print(f"\nmonitor wall time, {args.runs} runs per agent after {args.warmup} warm-up, alternating")
    print(f"  VirtualDomain  = {args.virtualdomain}")
    revision = tree_revision(args.agent)
    print(f"  VirtualMachine = {args.agent}" + (f" (tree at {revision})" if revision else ""))
    print(f"\nfloor on this machine ({CPUS} CPUs, load {load[0]:.2f} before, {load[1]:.2f} after):")
    for cmd in baseline:
        s = cmd.summary()
        print(f"  {cmd.label:<44} median {fmt(s['median_ms'], 7, 1)} ms   cpu {fmt(s['cpu_median_ms'], 7, 1)} ms")
    head = f"{'scenario':<34} {'agent':<15} {'median ms':>9} {'p10':>7} {'p90':>7} {'cpu ms':>7}  rc"
    print("\n" + head)
    print("-" * len(head))
    for sc in scenarios:
        for i, cmd in enumerate(sc.commands):
            s = cmd.summary()
            name = sc.name if i == 0 else ""
            print(
                f"{name:<34} {cmd.label:<15} {fmt(s['median_ms'], 9, 1)} {fmt(s['p10_ms'], 7, 1)} "
                f"{fmt(s['p90_ms'], 7, 1)} {fmt(s['cpu_median_ms'], 7, 1)}  {fmt_rc(s['rc'])}"
            )
    print(f"\nratio VirtualMachine / VirtualDomain of the medians (goal: wall time <= {GOAL})")
    for sc in scenarios:
        wall, cpu = fmt(ratio_of(sc), 6, 3), fmt(ratio_of(sc, cpu=True), 6, 3)
        print(f"  {sc.name:<34} wall {wall}  {verdict_of(sc)}   (cpu {cpu})")
    for sc in scenarios:
        for cmd in sc.commands:
            if cmd.failure:
                print(f"\n{sc.name}, {cmd.label}: a timed run failed, {cmd.failure}")
    if max(load) > CPUS:
        # The bench itself keeps about one CPU busy; more than that is someone else's work.
        print(
            f"\nwarning: the machine was busy (load {max(load):.2f} on {CPUS} CPUs): wall times are "
            "inflated and noisy; the cpu ratio is the steadier figure, or run again"
        )
    for why in skipped:
        print(f"\nskipped: {why}")


def failed(sc: Scenario) -> bool:
    return any(cmd.failure for cmd in sc.commands)


def verdict_of(sc: Scenario) -> str:
    """PASS or MISS against the goal; INVALID when a timed run of either agent did not return 0,
    or the ratio is unknown."""
    return reports.monitor_verdict(failed(sc), ratio_of(sc), GOAL)


def ratio_of(sc: Scenario, *, cpu: bool = False) -> float | None:
    """median(ours) / median(VirtualDomain) of wall time, or of CPU time; None when an agent
    has no timed run."""
    by_label = {cmd.label: [s.cpu_ms if cpu else s.wall_ms for s in cmd.samples] for cmd in sc.commands}
    return reports.median_ratio(by_label.get("VirtualMachine", []), by_label.get("VirtualDomain", []), 3)


def scenario_json(sc: Scenario) -> dict[str, Any]:
    return reports.monitor_scenario(
        sc.name,
        sc.hypervisor,
        {cmd.label: cmd.summary() for cmd in sc.commands},
        ratio_of(sc),
        ratio_of(sc, cpu=True),
        failed=failed(sc),
        goal=GOAL,
    )


def import_times(cmd: Command, top: int) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the slowest imports of one monitor run, under -X importtime."""
    done = capture([PYTHON, "-I", "-X", "importtime", *cmd.argv], cmd.env, RUN_TIMEOUT_S)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, module = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative_us), int(self_us), module.rstrip()))
    return sorted(rows, reverse=True)[:top]


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=30, help="timed runs per agent (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per agent first (default 3)")
    ap.add_argument("--agent", default=OURS, help=f"our agent's executable (default {OURS})")
    ap.add_argument("--virtualdomain", default=VIRTUALDOMAIN, help=f"VirtualDomain (default {VIRTUALDOMAIN})")
    ap.add_argument("--importtime", type=int, default=0, metavar="N", help="also list our monitor's N slowest imports")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error("--runs must be at least 2")
    for path in (args.agent, args.virtualdomain):
        if not os.access(path, os.X_OK):
            ap.error(f"{path} is not an executable file")
    args.agent = os.path.abspath(args.agent)
    return args


@dataclass
class Results:
    """What run() measured so far: main reports it even when run() stops on an error."""

    load_before: float | None = None
    load_after: float | None = None
    baseline: list[Command] = field(default_factory=list)
    measured: list[Scenario] = field(default_factory=list)  # measured to the end
    skipped: list[str] = field(default_factory=list)
    imports: list[dict[str, Any]] | None = None


def run(args: argparse.Namespace, tmp: Path, res: Results) -> None:
    res.load_before = os.getloadavg()[0]
    spawner = Spawner(tmp / "stderr")
    agents = [("VirtualDomain", args.virtualdomain, "heartbeat"), ("VirtualMachine", args.agent, "vmha")]

    base_env = {"PATH": SYSTEM_DIRS}
    res.baseline = [
        Command(f"{PYTHON} -I -c pass", [PYTHON, "-I", "-c", "pass"], base_env),
        Command(f"{PYTHON} -I -c 'import libvirt'", [PYTHON, "-I", "-c", "import libvirt"], base_env),
    ]
    measure(spawner, res.baseline, args.runs, args.warmup)

    uri, config = write_test_domain(tmp)
    scenarios = [
        Scenario("test driver, defaults", uri, config, {}, str(DOMAIN_VCPUS)),
        Scenario("test driver, utilization off", uri, config, dict(UTILIZATION_OFF), str(DOMAIN_VCPUS)),
    ]
    found = find_real_domain(tmp)
    if isinstance(found, str):
        res.skipped.append(f"real libvirtd scenario: {found}")
    else:
        name, real_config, vcpus = found
        scenarios += [
            Scenario(f"{REAL_URI} {name}, defaults", REAL_URI, real_config, {}, vcpus),
            Scenario(f"{REAL_URI} {name}, utilization off", REAL_URI, real_config, dict(UTILIZATION_OFF), vcpus),
        ]

    for sc in scenarios:
        try:
            prepare(sc, agents, tmp)
        except BenchError as exc:
            if sc.hypervisor.startswith("test://"):
                raise
            res.skipped.append(f"{sc.name}: {exc}")
            continue
        print(f"measuring {sc.name} ...", file=sys.stderr, flush=True)
        measure(spawner, sc.commands, args.runs, args.warmup)
        res.measured.append(sc)

    res.load_after = os.getloadavg()[0]
    print_table(res.baseline, res.measured, res.skipped, args, (res.load_before, res.load_after))
    if args.importtime:
        ours = next(cmd for cmd in res.measured[0].commands if cmd.label == "VirtualMachine")
        rows = import_times(ours, args.importtime)
        print(f"\nslowest imports of one VirtualMachine monitor ({res.measured[0].name}, -X importtime):")
        print(f"  {'cumulative ms':>13} {'self ms':>8}  module")
        for cumulative_us, self_us, module in rows:
            print(f"  {cumulative_us / 1000:13.1f} {self_us / 1000:8.1f}  {module}")
        # no row: the run printed no import times (it failed): not measured, not "none"
        res.imports = [{"module": m.strip(), "cumulative_ms": c / 1000, "self_ms": s / 1000} for c, s, m in rows]


def report_of(args: argparse.Namespace, res: Results, error: str | None) -> dict[str, Any]:
    """The --json object (reports.monitor_report): what was measured, null for the rest."""
    return reports.monitor_report(
        runs=args.runs,
        warmup=args.warmup,
        goal=GOAL,
        agents={"VirtualDomain": args.virtualdomain, "VirtualMachine": args.agent},
        revision=tree_revision(args.agent),
        cpus=CPUS,
        load=[res.load_before, res.load_after],
        baseline={cmd.label: cmd.summary() for cmd in res.baseline} if res.baseline else None,
        scenarios=[scenario_json(sc) for sc in res.measured],
        skipped=res.skipped,
        imports=res.imports,
        error=error,
    )


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    res = Results()
    error: str | None = None
    with tempfile.TemporaryDirectory(prefix="vmha-bench-") as tmp:
        try:
            run(args, Path(tmp), res)
        except BenchError as exc:
            error = str(exc)
        except KeyboardInterrupt:
            error = "interrupted"
        except Exception as exc:  # noqa: BLE001 - a bug: its traceback on stderr, the JSON still last
            traceback.print_exc(file=sys.stderr)
            error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        print(f"bench/monitor.py: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(report_of(args, res, error), sort_keys=True), flush=True)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
