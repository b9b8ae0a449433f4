"""The .deb on this machine: it installs, pcs and man see what it installed, `vmha` runs, and
`dpkg --purge` leaves nothing of it behind.

Needs root (CI is root). The machine is left as found: the files of `make install` are moved
out of the way first (`make uninstall`) so the package is tested alone, and put back with
`make install` afterwards if they were there. The package is built with `make deb` (a no-op
when it is up to date). The tests run in file order; the last one purges the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

PKG = "vmha"
AGENT = "VirtualMachine"
OCF_AGENT = f"/usr/lib/ocf/resource.d/vmha/{AGENT}"
PYLIB = "/usr/lib/python3/dist-packages/vmha"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="installs a .deb: needs root"),
    pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system"),
]


def _make_deb() -> list[str]:
    """`make deb` through the main Makefile once it includes packaging.mk (its AGENTS list)."""
    with open(os.path.join(ROOT, "Makefile")) as fh:
        included = any(line.split() == ["include", "packaging/packaging.mk"] for line in fh)
    return ["make", "--no-print-directory", "-C", ROOT, *([] if included else ["-f", "packaging/packaging.mk"]), "deb"]


def run(
    args: list[str], timeout: float = 120, cwd: str | None = None, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**ENV, **(env_extra or {})}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


def installed(pkg: str = PKG) -> bool:
    done = run(["dpkg-query", "-W", "-f=${Status}", pkg])
    return done.returncode == 0 and done.stdout.endswith(" installed")


@pytest.fixture(scope="module")
def deb() -> str:
    """The .deb of this tree, built (or brought up to date) by `make deb`."""
    done = run(_make_deb(), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    version = run(["/usr/bin/python3", "-I", os.path.join(ROOT, "packaging/tools/version.py"), "package"])
    path = os.path.join(ROOT, "build/packages/deb", f"{PKG}_{version.stdout.strip()}_all.deb")
    assert os.path.isfile(path), path
    return path


@pytest.fixture(scope="module")
def package(deb: str):
    """Installs the .deb; yields its paths and which of them existed before; purges it after.

    `make test` installs the package before the tests run (the lab runs the packaged agents):
    then it is purged first, so what "existed before" is measured without it, and installed
    again at the end, leaving the machine as the test found it.
    """
    try:
        from vmha.lab.config import LabPaths
    except ImportError:  # a build without the lab
        LabPaths = None  # noqa: N806
    if LabPaths is not None and os.path.exists(LabPaths().state_file):
        pytest.skip("a vmha lab is up and runs the installed agent, which this test replaces (vmha lab down)")
    had_package = installed()
    if had_package:
        done = run(["dpkg", "--purge", PKG], timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    had_make_install = os.path.lexists(OCF_AGENT)
    if had_make_install:
        done = run(["make", "--no-print-directory", "-C", ROOT, "uninstall"])
        assert done.returncode == 0, done.stderr
    paths = _contents(deb)  # read before the package exists
    before = {p for p in paths if os.path.lexists(p)}
    try:
        done = run(["dpkg", "-i", deb], timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        yield {"paths": paths, "before": before}
    finally:
        if installed():
            run(["dpkg", "--purge", PKG], timeout=300)
        if had_make_install:
            done = run(["make", "--no-print-directory", "-C", ROOT, "install"], timeout=600)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        if had_package:
            done = run(["dpkg", "-i", deb], timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr


def _contents(deb: str) -> list[str]:
    """Every path in the .deb, absolute ('./usr/sbin/vmha' -> '/usr/sbin/vmha')."""
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    names = subprocess.run(["tar", "-t"], stdin=tar.stdout, capture_output=True, text=True, check=True).stdout
    assert tar.wait() == 0
    return sorted({os.path.normpath("/" + n) for n in names.splitlines() if n.strip("./")})


def test_pcs_describes_the_agent(package):
    done = run(["pcs", "resource", "describe", f"ocf:vmha:{AGENT}"], timeout=60)
    assert done.returncode == 0, done.stderr
    for text in (f"ocf:vmha:{AGENT}", "config (required)", "hypervisor", "shutdown_mode", "migrate_to"):
        assert text in done.stdout, text


def test_agent_runs_on_the_packaged_library(package):
    done = run(["/usr/bin/python3", "-I", "-c", "import vmha, sys; sys.stdout.write(vmha.__file__)"], cwd="/")
    assert done.stdout == f"{PYLIB}/__init__.py"
    meta = run([OCF_AGENT, "meta-data"], cwd="/")
    assert meta.returncode == 0 and f'<resource-agent name="{AGENT}"' in meta.stdout, meta.stderr


def test_man_pages_open(package):
    assert shutil.which("man", path=ENV["PATH"]), "man is not installed (apt package man-db)"
    where = run(["man", "-w", f"ocf_vmha_{AGENT}"])
    assert where.stdout.strip() == f"/usr/share/man/man7/ocf_vmha_{AGENT}.7.gz", where.stderr
    where = run(["man", "-w", "8", "vmha"])
    assert where.stdout.strip() == "/usr/share/man/man8/vmha.8.gz", where.stderr
    where = run(["man", "-w", "8", "vmha-plan"])
    assert where.stdout.strip() == "/usr/share/man/man8/vmha-plan.8.gz", where.stderr
    for page in (["7", f"ocf_vmha_{AGENT}"], ["8", "vmha"], ["8", "vmha-plan"]):
        shown = run(["man", "--warnings", "-P", "cat", *page], env_extra={"MANWIDTH": "100"})
        assert shown.returncode == 0 and shown.stderr == "", shown.stderr  # no groff warnings
        assert "SEE ALSO" in shown.stdout
    shown = run(["man", "-P", "cat", f"ocf_vmha_{AGENT}"])
    for text in ("SUPPORTED PARAMETERS", "OPERATIONS", "EXAMPLE", "shutdown_mode", f"ocf:vmha:{AGENT}"):
        assert text in shown.stdout, text


def test_vmha_command(package):
    done = run(["vmha", "--help"], cwd="/")
    assert done.returncode == 0 and "usage: vmha" in done.stdout, done.stderr
    assert run(["vmha", "version"], cwd="/").stdout.startswith("vmha ")


def test_purge_leaves_nothing_behind(package):
    done = run(["dpkg", "--purge", PKG], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not empty" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert not installed()
    left = [p for p in package["paths"] if p not in package["before"] and os.path.lexists(p)]
    assert left == [], f"left behind: {left}"
    gone = [p for p in package["before"] if not os.path.lexists(p)]
    assert gone == [], f"removed what was there before: {gone}"
    assert not os.path.lexists(PYLIB)  # including the bytecode dh_python3 compiled at install
    assert [f for f in os.listdir("/var/lib/dpkg/info") if f.startswith(f"{PKG}.")] == []
