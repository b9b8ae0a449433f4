"""The RPMs of `make rpm`, one per target: each is for its distribution's /usr/bin/python3.

For el9 (Python 3.9) and el10 (3.12): the file name carries the dist tag, the package requires
python(abi) = that version and no other, the library is in that version's site-packages (every
module of lib/vmha, nothing elsewhere), and the agents are executables under
/usr/lib/ocf/resource.d/vmha. Read with `rpm -qp` (Debian's rpm): nothing is installed.

The packages are built with `make rpm`, as test_deb.py builds the .deb: a no-op when they are
up to date, so after `make rpm` (or `make lint-packages`) this test builds nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

PKG = "vmha"
# The targets of packaging.mk (RPM_TARGETS) and their python3's version.
TARGETS = {"el9": "3.9", "el10": "3.12"}
AGENTS = ("VirtualMachine", "GuestService", "HypervisorHealth")
OCF_DIR = "/usr/lib/ocf/resource.d/vmha"
RPM_DIR = os.path.join(ROOT, "build/packages/rpm/RPMS/noarch")
# Debian's rpm keeps its database under HOME (~/.rpmdb): the same private HOME as packaging.mk.
ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "HOME": os.path.join(ROOT, "build/packages/rpm-home"),
}

pytestmark = [
    pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="no rpmbuild (apt package rpm: make packages-deps)"),
]


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)


def _make_rpm() -> list[str]:
    """`make rpm` through the main Makefile once it includes packaging.mk (its AGENTS list)."""
    with open(os.path.join(ROOT, "Makefile")) as fh:
        included = any(line.split() == ["include", "packaging/packaging.mk"] for line in fh)
    return ["make", "--no-print-directory", "-C", ROOT, *([] if included else ["-f", "packaging/packaging.mk"]), "rpm"]


@pytest.fixture(scope="module")
def rpms() -> dict[str, str]:
    """{target: path} of this tree's RPMs, built (or brought up to date) by `make rpm`."""
    os.makedirs(ENV["HOME"], exist_ok=True)
    done = subprocess.run(_make_rpm(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    version = run(["/usr/bin/python3", "-I", os.path.join(ROOT, "packaging/tools/version.py"), "package"])
    assert version.returncode == 0, version.stderr
    paths = {t: os.path.join(RPM_DIR, f"{PKG}-{version.stdout.strip()}-1.{t}.noarch.rpm") for t in TARGETS}
    for path in paths.values():
        assert os.path.isfile(path), path
    return paths


def query(rpm: str, *args: str) -> list[str]:
    done = run(["rpm", "-qp", *args, rpm])
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _library_modules() -> set[str]:
    """lib/vmha's .py files, relative to lib/ ('vmha/virtual_machine/agent.py')."""
    lib = os.path.join(ROOT, "lib")
    found = set()
    for d, dirs, files in os.walk(os.path.join(lib, "vmha")):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        found |= {os.path.relpath(os.path.join(d, f), lib) for f in files if f.endswith(".py")}
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_dist_tag_in_name_and_release(rpms, target):
    path = rpms[target]
    assert os.path.basename(path).endswith(f".{target}.noarch.rpm"), path
    (line,) = query(path, "--qf", "%{NAME} %{RELEASE} %{ARCH}\n")
    assert line == f"{PKG} 1.{target} noarch"


@pytest.mark.parametrize("target", TARGETS)
def test_requires_its_python_abi_only(rpms, target):
    requires = query(rpms[target], "--requires")
    abi = {r.strip() for r in requires if r.startswith("python(abi)")}
    assert abi == {f"python(abi) = {TARGETS[target]}"}, requires
    assert {"python3-libvirt", "python3-lxml"} <= {r.strip() for r in requires}, requires


@pytest.mark.parametrize("target", TARGETS)
def test_library_in_its_site_packages(rpms, target):
    site = f"/usr/lib/python{TARGETS[target]}/site-packages"
    files = query(rpms[target], "--list")
    python_files = {f for f in files if f.endswith(".py")}
    outside = sorted(f for f in python_files if not f.startswith(site + "/vmha/"))
    assert outside == [], f"Python files outside {site}/vmha"
    assert f"{site}/vmha" in files
    packaged = {os.path.relpath(f, site) for f in python_files}
    assert packaged == _library_modules(), "the RPM's modules differ from lib/vmha"


@pytest.mark.parametrize("target", TARGETS)
def test_agents_are_executables_in_the_ocf_directory(rpms, target):
    lines = query(rpms[target], "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]")
    modes = dict(reversed(line.split(" ", 1)) for line in lines)
    agents = sorted(p for p in modes if p.startswith(OCF_DIR + "/"))
    assert agents == sorted(f"{OCF_DIR}/{a}" for a in AGENTS)
    for path in agents:
        assert modes[path] == "-rwxr-xr-x", (path, modes[path])
    assert modes[OCF_DIR].startswith("d")
