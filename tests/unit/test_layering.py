"""The layering rules (README "Layout"), checked on the source: which package may import
which, who may import libvirt, who may exit the process or read the environment.

Read from the syntax tree, so a lazy import inside a function counts like one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "lib"

LEAVES = {"vmha", "vmha.deadline", "vmha.qemu_processes"}
AGENT_PACKAGES = {"vmha.virtual_machine", "vmha.guest_service", "vmha.hypervisor_health"}
# package -> the vmha packages it may import (besides itself and the leaves)
MAY_IMPORT = {
    "vmha.ocf": set(),  # the OCF contract knows nothing of libvirt
    "vmha.virt": set(),  # libvirt, bounded; nothing about the cluster
    "vmha.verdicts": {"vmha.ocf", "vmha.virt"},  # pure decisions over their types
    "vmha.agent_common": {"vmha.ocf", "vmha.virt"},
    **{p: {"vmha.ocf", "vmha.virt", "vmha.verdicts", "vmha.agent_common"} for p in AGENT_PACKAGES},
    "vmha.cli": {"vmha.lab", "vmha.path_check", "vmha.ops"},
    # the operator's tools read the cluster through its own commands, as the agents' OCF layer does
    "vmha.ops": {"vmha.ocf", "vmha.virt", "vmha.path_check"},
    # the operator's check by hand runs the agent's own client-path code and verdicts
    "vmha.path_check": {"vmha.verdicts", "vmha.guest_service"},
    # the lab observes the agents from outside: it shares none of their libvirt code
    "vmha.lab": {"vmha.ocf"},
}
LIBVIRT_USERS = ("vmha.virt.", "vmha.lab.checker")  # the checker: an independent observer
# the process's entry points (``if __name__ == "__main__"``): the only ones that exit it
EXITERS = {"vmha.cli", "vmha.lab.nodeinit", "vmha.lab.power", "vmha.lab.demo", "vmha.lab.fence_agent"}
# the command line's entry point reads the environment once and hands it down to the tools
ENV_READERS = {"vmha.cli"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted((LIB / "vmha").rglob("*.py")):
        name = ".".join(path.relative_to(LIB).with_suffix("").parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


MODULES = modules()


def test_every_package_has_a_rule() -> None:
    packages = {package(m) for m in MODULES} - LEAVES
    assert packages <= set(MAY_IMPORT), sorted(packages - set(MAY_IMPORT))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_one_way(module: str) -> None:
    own = package(module)
    allowed = MAY_IMPORT.get(own, set()) | {own} | LEAVES
    if module in LEAVES:
        allowed = {"vmha", "vmha.deadline"}
    wrong = sorted(
        name for name in imported(MODULES[module]) if name.startswith("vmha") and package(name) not in allowed
    )
    # "from vmha import __version__" names a leaf attribute, not a package
    wrong = [w for w in wrong if w != "vmha.__version__"]
    assert not wrong, f"{module} imports {wrong}; {own} may import only {sorted(allowed)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_virt_and_the_checker_import_libvirt(module: str) -> None:
    uses = {n for n in imported(MODULES[module]) if n.split(".")[0] in ("libvirt", "libvirt_qemu")}
    if uses:
        assert module.startswith(LIBVIRT_USERS), f"{module} imports {sorted(uses)}"


def _calls(tree: ast.Module, owner: str, attr: str) -> int:
    return sum(
        1
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr == attr and isinstance(n.value, ast.Name) and n.value.id == owner
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_entry_points_exit_and_only_the_lab_reads_the_environment(module: str) -> None:
    tree = MODULES[module]
    if module not in EXITERS:
        assert _calls(tree, "sys", "exit") == 0, f"{module} calls sys.exit"
    if package(module) != "vmha.lab" and module not in ENV_READERS:
        # an agent's environment is OcfContext.from_env(env), handed down from main()
        assert _calls(tree, "os", "environ") == 0, f"{module} reads os.environ"


def test_the_rules_catch_a_wrong_import() -> None:
    """The check itself: a verdict module that asked libvirt or the runner would be caught."""
    tree = ast.parse("from vmha.virtual_machine.agent import main\nimport libvirt\n")
    assert "vmha.virtual_machine.agent" in imported(tree) and "libvirt" in imported(tree)
    assert package("vmha.virtual_machine.agent") not in MAY_IMPORT["vmha.verdicts"]
