"""Small JSON state files under HA_RSCTMP, written atomically with mode 0600.

HA_RSCTMP is a tmpfs that Pacemaker hosts clear at boot, which is exactly the lifetime we
want for what an agent remembers between invocations (the identity of the domain it
started, the utilization it last published).  A torn or foreign file reads as "nothing".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def state_path(rsc_tmp: str, agent: str, instance: str) -> str:
    return os.path.join(rsc_tmp, f"vmha-{agent}-{_UNSAFE.sub('_', instance)}.json")


def read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` atomically. Raises OSError."""
    import tempfile  # lazy: only writes need it, and the monitor rarely writes

    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".vmha-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_file_atomic(path: str, content: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``content``, keeping its mode (or ``mode``) and owner. Raises OSError.

    A symlink is followed: the file it points to (e.g. on shared storage) is replaced, not the link.
    """
    import tempfile

    path = os.path.realpath(path)
    directory = os.path.dirname(path) or "."
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=".vmha-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else (st.st_mode & 0o7777 if st else 0o600))
        if st is not None:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class Store:
    """One agent instance's state file: read on first use, written with ``save()``.

    A write that fails is logged (through ``warn``), not raised: what an agent remembers
    makes it cheaper or kinder, never correct, so losing it must not fail an action.
    """

    def __init__(self, path: str, warn: Callable[[str], None]) -> None:
        self.path = path
        self._warn = warn
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = read(self.path)
        return self._data

    def save(self) -> None:
        try:
            write(self.path, self.data)
        except OSError as exc:
            self._warn(f"cannot write state file {self.path}: {exc.strerror}")
