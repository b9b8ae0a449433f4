"""The operator's tools: read the live cluster, never a state of their own."""

from __future__ import annotations

import os
from collections.abc import Mapping


def cluster_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables Pacemaker's tools read that an operator may set (``CIB_file`` to ask a
    saved CIB, ``CIB_user``, ``PCMK_*``), passed on to them; nothing else is."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k.startswith(("CIB_", "PCMK_"))}
