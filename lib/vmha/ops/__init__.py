"""The operator's tools: read the live cluster, never a state of their own."""

from __future__ import annotations

from collections.abc import Mapping


def cluster_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables Pacemaker's tools read that an operator may set (``CIB_file`` to ask a
    saved CIB, ``CIB_user``, ``PCMK_*``), passed on to them; nothing else is.  ``environ`` is
    the entry point's (``vmha.cli`` hands down ``os.environ``)."""
    return {k: v for k, v in environ.items() if k.startswith(("CIB_", "PCMK_"))}
