"""The ``monitor_scripts``: run by every monitor, and waited for after start and migrate_from
until they pass or the operation's time is up.
"""

from __future__ import annotations

import time

from vmha.ocf.codes import GenericError
from vmha.ocf.runner import CommandError
from vmha.virt.domain import Domain
from vmha.virtual_machine.resource import Resource


def run_monitor_scripts(res: Resource, dom: Domain) -> None:
    """Raises GenericError for the first script that does not exit 0."""
    scripts = res.p.text("monitor_scripts").split()
    extra = {"VMHA_DOMAIN_NAME": dom.name, "VMHA_DOMAIN_UUID": dom.uuid()}
    for script in scripts:
        try:
            done = res.runner.run([script], timeout=res.deadline.remaining(), env_extend=extra)
        except CommandError as exc:
            raise GenericError(f"monitor script {script}: {exc}") from None
        if done.rc != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            tail = f": {lines[-1]}" if lines else ""
            raise GenericError(f"monitor script {script} failed (rc {done.rc}){tail}")


def wait_monitor_scripts(res: Resource, dom: Domain, what: str) -> None:
    """After ``what`` (start, migrate_from): retry the scripts each second until they pass."""
    if not res.p.text("monitor_scripts"):
        return
    while True:
        try:
            run_monitor_scripts(res, dom)
            return
        except GenericError as exc:
            if res.deadline.remaining() < 1.0:
                raise GenericError(f"{what}: {exc.reason} until the timeout") from None
            res.log.info(f"{what}: waiting for monitor scripts: {exc.reason}")
            time.sleep(1.0)
