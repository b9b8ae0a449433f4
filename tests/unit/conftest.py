"""Shared helpers for the unit tests: ``lib`` on sys.path and a scripted command runner.

The unit tests need no libvirt daemon and no root; the few that touch the real libvirt
binding use the in-process ``test:///`` driver or a socket that does not exist.
"""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(REPO, "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

import pytest  # noqa: E402

if REPO not in sys.path:  # for tests.fakes when pytest is not started from the checkout
    sys.path.insert(0, REPO)

from tests.fakes.runner import FakeRunner  # noqa: E402


@pytest.fixture
def scripted_runner():
    """The scripted runner of tests/fakes: an unexpected argv fails the test at once."""
    runner = FakeRunner()
    yield runner
    runner.assert_done()


@pytest.fixture
def python_child_env():
    """Environment for a child Python that imports vmha from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCF_", "HA_", "PYTHON"))}
    env["PYTHONPATH"] = LIB
    return env
