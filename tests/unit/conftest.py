"""Shared helpers for the unit tests: ``lib`` on sys.path and a scripted command runner.

The unit tests need no libvirt daemon and no root; the few that touch the real libvirt
binding use the in-process ``test:///`` driver or a socket that does not exist.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Mapping, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(REPO, "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import pytest  # noqa: E402
from vmha.ocf.runner import Completed  # noqa: E402


class ScriptedRunner:
    """A ``CommandRunner`` stand-in: an ordered queue of expected argv -> answer.

    An argv that is not the next one expected fails the test at once (pcs's mock_runner
    does the same), and ``assert_done`` fails when expected calls were never made.
    """

    def __init__(self) -> None:
        self._expected: deque[tuple[tuple[str, ...], Completed | BaseException]] = deque()
        self.calls: list[tuple[tuple[str, ...], float]] = []

    def expect(
        self,
        argv: Sequence[str],
        rc: int = 0,
        stdout: str = "",
        stderr: str = "",
        *,
        raises: BaseException | None = None,
    ) -> ScriptedRunner:
        answer: Completed | BaseException = raises or Completed(tuple(argv), rc, stdout, stderr)
        self._expected.append((tuple(argv), answer))
        return self

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env_extend: Mapping[str, str] | None = None,
    ) -> Completed:
        got = tuple(argv)
        if not self._expected:
            pytest.fail(f"unexpected command (none expected): {got}")
        want, answer = self._expected.popleft()
        if got != want:
            pytest.fail(f"unexpected command:\n  got  {got}\n  want {want}")
        self.calls.append((got, timeout))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def assert_done(self) -> None:
        left = [argv for argv, _ in self._expected]
        assert not left, f"expected commands never ran: {left}"


@pytest.fixture
def scripted_runner():
    runner = ScriptedRunner()
    yield runner
    runner.assert_done()


@pytest.fixture
def python_child_env():
    """Environment for a child Python that imports vmha from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCF_", "HA_", "PYTHON"))}
    env["PYTHONPATH"] = LIB
    return env
