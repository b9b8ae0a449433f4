"""A scripted stand-in for ``vmha.ocf.runner.CommandRunner``.

Strict (the default): an ordered queue of expected commands, each an argv prefix and its
answer; a command that is not the next one expected fails the test at once (pcs's
``mock_runner`` does the same), and ``assert_done()`` fails when expected commands never ran::

    runner = FakeRunner()
    runner.expect(["crm_node", "--name"], stdout="node1\\n")
    runner.expect(["crm_resource", "--resource", "vm1"], rc=1, stderr="Could not connect")

Permissive (``FakeRunner.permissive()``): every command succeeds with empty output unless an
``answer`` for its prefix was given; everything is recorded in ``calls``.

The failure is ``pytest.fail`` (a BaseException), so the agent's own ``except Exception``
cannot swallow it; it is also kept in ``unexpected`` for ``assert_done``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from vmha.ocf.runner import Completed


@dataclass(frozen=True)
class RunCall:
    argv: tuple[str, ...]
    timeout: float
    stdin: str | None
    env_extend: dict[str, str] = field(default_factory=dict)
    env_unset: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Expected:
    prefix: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    raises: BaseException | None

    def matches(self, argv: tuple[str, ...]) -> bool:
        return argv[: len(self.prefix)] == self.prefix

    def answer(self, argv: tuple[str, ...]) -> Completed:
        if self.raises is not None:
            raise self.raises
        return Completed(argv, self.rc, self.stdout, self.stderr)


class FakeRunner:
    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self._queue: deque[_Expected] = deque()
        self._answers: list[_Expected] = []
        self.calls: list[RunCall] = []
        self.unexpected: list[tuple[str, ...]] = []
        self._ignored: list[tuple[str, ...]] = []

    @classmethod
    def permissive(cls) -> FakeRunner:
        return cls(strict=False)

    def expect(
        self,
        prefix: Sequence[str],
        *,
        rc: int = 0,
        stdout: str = "",
        stderr: str = "",
        raises: BaseException | None = None,
    ) -> FakeRunner:
        """Strict mode: the next command must start with ``prefix``."""
        self._queue.append(_Expected(tuple(prefix), rc, stdout, stderr, raises))
        return self

    def answer(
        self,
        prefix: Sequence[str],
        *,
        rc: int = 0,
        stdout: str = "",
        stderr: str = "",
        raises: BaseException | None = None,
    ) -> FakeRunner:
        """Permissive mode: how to answer any command starting with ``prefix`` (first match wins)."""
        self._answers.append(_Expected(tuple(prefix), rc, stdout, stderr, raises))
        return self

    def ignore(self, prefix: Sequence[str]) -> FakeRunner:
        """Strict mode: a command starting with ``prefix`` is recorded and answered with
        success, outside the expected sequence (a side channel a test is not about)."""
        self._ignored.append(tuple(prefix))
        return self

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env_extend: Mapping[str, str] | None = None,
        env_unset: Sequence[str] = (),
    ) -> Completed:
        got = tuple(argv)
        assert timeout > 0, f"{got} run with no time left (timeout {timeout})"
        self.calls.append(RunCall(got, timeout, stdin, dict(env_extend or {}), tuple(env_unset)))
        if not self.strict:
            for ans in self._answers:
                if ans.matches(got):
                    return ans.answer(got)
            return Completed(got, 0, "", "")
        if any(got[: len(prefix)] == prefix for prefix in self._ignored):
            return Completed(got, 0, "", "")
        if not self._queue:
            self.unexpected.append(got)
            pytest.fail(f"unexpected command (none expected): {got}")
        want = self._queue.popleft()
        if not want.matches(got):
            self.unexpected.append(got)
            pytest.fail(f"unexpected command:\n  got  {got}\n  want {want.prefix}...")
        return want.answer(got)

    def argvs(self, program: str | None = None) -> list[tuple[str, ...]]:
        return [c.argv for c in self.calls if program is None or c.argv[0] == program]

    @property
    def pending(self) -> list[tuple[str, ...]]:
        return [e.prefix for e in self._queue]

    def assert_done(self) -> None:
        assert not self.unexpected, f"unexpected commands ran: {self.unexpected}"
        assert not self._queue, f"expected commands never ran: {self.pending}"
