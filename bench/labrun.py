"""One way the lab benches run: up, the double-run checker throughout, the bench's body,
down; whatever happens (a failed step, Ctrl-C, SIGTERM, a bug) the report gets ``error``,
``up`` and ``down_problems``, and the caller still prints its JSON last."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vmha.lab.checker import DoubleRunChecker
from vmha.lab.config import LabConfig
from vmha.lab.lab import Lab, LabError
from vmha.lab.signals import interrupts_as_exceptions
from vmha.ocf.runner import CommandError


@dataclass
class LabRun:
    completed: bool = False  # the body returned
    double_runs: list[dict[str, Any]] | None = None  # None: the checker never ran
    double_run_samples: int | None = None


def run_in_lab(
    report: dict[str, Any],
    cfg: LabConfig,
    body: Callable[[Lab], None],
    *,
    log: Callable[[str], None],
    check: Callable[[], None] | None = None,
) -> LabRun:
    """``check`` runs before the lab comes up (raise LabError to refuse)."""
    run = LabRun()
    checker = None
    try:
        if check is not None:
            check()
        lab = Lab(log=log)
        with interrupts_as_exceptions():
            try:
                report["up"] = lab.up(cfg)
                checker = DoubleRunChecker(lab.hosts, lab.host_pid).start()
                body(lab)
                run.completed = True
            finally:
                if checker:
                    checker.stop()
                    run.double_runs = [i.to_json() for i in checker.incidents]
                    run.double_run_samples = checker.tracker.samples
                report["down_problems"] = lab.down()
    except KeyboardInterrupt:
        report["error"] = "interrupted"
    except (LabError, CommandError, OSError) as exc:
        report["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug: its traceback on stderr, the JSON still last
        traceback.print_exc(file=sys.stderr)
        report["error"] = f"{type(exc).__name__}: {exc}"
    return run
