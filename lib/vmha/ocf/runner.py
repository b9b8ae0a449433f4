"""The one way vmha runs an external program.

Every program is named by an absolute path, gets an argument list (never a shell
string), runs with ``LC_ALL=C`` so its output can be parsed, and is killed when its
timeout passes.  Tests swap the runner for a scripted fake (``tests/fakes/runner.py``).

Raises:
    CommandNotFound: the program is not installed at the path we expect.
    CommandTimedOut: the program did not finish in time (it has been killed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

# The directories a cluster host keeps its administration tools in, in search order.
SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")

# Variables a child may need from our environment: Pacemaker tools read CIB_* (e.g. CIB_file
# for an offline CIB) and PCMK_*; nothing else leaks into the programs we run.
_PASS_PREFIXES = ("CIB_", "PCMK_", "HA_", "OCF_")


class CommandError(Exception):
    """Base of the runner's errors; ``str()`` is written for an operator."""


class CommandNotFound(CommandError):
    pass


class CommandTimedOut(CommandError):
    pass


class CommandFailed(CommandError):
    """The program ran and answered non-zero (``Completed.checked``)."""


class Completed(NamedTuple):
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def complaint(self) -> str:
        """``<program> failed (rc N): <its last line>`` (stderr, else stdout)."""
        tool = self.argv[0].rsplit("/", 1)[-1] if self.argv else "command"
        detail = (self.stderr or self.stdout).strip().splitlines()
        return f"{tool} failed (rc {self.rc}): {detail[-1] if detail else 'no output'}"

    def checked(self) -> Completed:
        """This answer when the program succeeded; else raises CommandFailed (``complaint``)."""
        if not self.ok:
            raise CommandFailed(self.complaint())
        return self


def find_program(name: str, dirs: Sequence[str] = SEARCH_DIRS) -> str:
    """Absolute path of ``name`` in the fixed system directories.

    Raises CommandNotFound; never consults $PATH (agents run as root).
    """
    if os.path.isabs(name):
        if os.access(name, os.X_OK):
            return name
        raise CommandNotFound(f"{name} is not installed or not executable")
    for d in dirs:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    raise CommandNotFound(f"{name} is not installed (looked in {', '.join(dirs)})")


def child_env(
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    unset: Sequence[str] = (),
) -> dict[str, str]:
    env = {"LC_ALL": "C", "LANG": "C", "PATH": ":".join(SEARCH_DIRS)}
    for key, value in (base or {}).items():
        if key.startswith(_PASS_PREFIXES) and key not in unset:
            env[key] = value
    env.update(extra or {})
    return env


class CommandRunner:
    """Runs programs; one instance per process, handed down to whoever needs it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._base_env = dict(env or {})

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env_extend: Mapping[str, str] | None = None,
        env_unset: Sequence[str] = (),
    ) -> Completed:
        """Run ``argv`` (argv[0] a program name or absolute path) and wait at most ``timeout`` s.
        ``env_unset``: variables of ours the program must not see.

        Raises CommandNotFound, CommandTimedOut.
        """
        import subprocess  # lazy: the monitor path rarely runs a program

        if not argv:
            raise ValueError("empty argv")
        program = find_program(argv[0])
        full = (program, *argv[1:])
        if timeout <= 0:
            raise CommandTimedOut(f"no time left to run {os.path.basename(program)}")
        try:
            # Its own session, so a timeout kills the program's children too.
            proc = subprocess.Popen(
                full,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                env=child_env(self._base_env, env_extend, env_unset),
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandNotFound(f"cannot run {program}: {exc.strerror}") from exc
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            import signal

            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise CommandTimedOut(f"{os.path.basename(program)} did not finish within {timeout:.1f}s") from exc
        return Completed(full, proc.returncode, out, err)
