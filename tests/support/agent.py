"""Run an agent executable the way pacemaker-execd does: a fresh process with an OCF environment."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT_DIR = os.path.join(ROOT, "agents")
REASON = "ocf-exit-reason:"


@dataclass
class AgentRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def reasons(self) -> list[str]:
        return [line[len(REASON) :] for line in self.stderr.splitlines() if line.startswith(REASON)]

    @property
    def reason(self) -> str:
        found = self.reasons
        assert len(found) <= 1, f"more than one exit reason: {found}"
        return found[0] if found else ""


def ocf_env(
    instance: str,
    params: dict[str, str],
    *,
    rsctmp: str,
    interval_ms: int = 10000,
    timeout_ms: int = 20000,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": instance,
        "OCF_RESOURCE_TYPE": "VirtualMachine",
        "OCF_RESOURCE_PROVIDER": "vmha",
        "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
        "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
        "HA_RSCTMP": rsctmp,
    }
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    env.update(extra or {})
    return env


def run_agent(
    action: str,
    env: dict[str, str],
    *,
    agent: str = "VirtualMachine",
    executable: str | None = None,
    wait: float = 120.0,
) -> AgentRun:
    path = executable or os.path.join(AGENT_DIR, agent)
    t0 = time.monotonic()
    proc = subprocess.run(
        [path, action], env=env, capture_output=True, text=True, timeout=wait, stdin=subprocess.DEVNULL
    )
    return AgentRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
