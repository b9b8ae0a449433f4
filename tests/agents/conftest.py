"""Fixtures the agent contract suites share: a private libvirtd and a hung one."""

from __future__ import annotations

import os

import pytest

from tests.support import silent
from tests.support.libvirtd import private_libvirtd


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """(URI, holder connection) of a private libvirtd's test driver, one per test module.

    The test driver keeps its state between processes only while a client is connected:
    the holder is that client."""
    if os.geteuid() != 0:
        pytest.skip("a private libvirtd needs root (CI runs as root)")
    directory = str(tmp_path_factory.mktemp("libvirtd"))
    with private_libvirtd(directory) as sock:
        uri = f"test+unix:///default?socket={sock}"
        import libvirt

        holder = libvirt.open(uri)
        try:
            yield uri, holder
        finally:
            holder.close()


@pytest.fixture(scope="module")
def silent_socket(tmp_path_factory):
    """A unix socket that accepts and never answers: a hung libvirtd."""
    with silent.silent_socket(str(tmp_path_factory.mktemp("hung"))) as path:
        yield path
