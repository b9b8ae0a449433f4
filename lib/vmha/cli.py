"""The ``vmha`` command."""

from __future__ import annotations

import os
import sys

from vmha import __version__

USAGE = """usage: vmha <command> [args]

commands:
  path-check URL...         GuestService's client-path checks by hand (tcp://, http(s)://,
                            postgresql://, mysql://): 0 healthy, 1 not, 2 bad input
  status [--json]           the whole stack at a glance: hosts, VMs, guests, services, client
                            path, N+1: 0 all well, 1 degraded, 2 something down, 3 cannot tell
  plan [--failures K] [--standby HOST] [--json]
                            N+1: where every VM would go if a host failed (Pacemaker's
                            scheduler on a copy of the CIB): 0 met, 1 not met, 2 bad input,
                            3 cannot tell
  lab up|status|exec|down|demo|soak
                            a real Pacemaker + libvirt cluster of namespace hosts on this machine
  version                   print the version

Agents: ocf:vmha:VirtualMachine, ocf:vmha:GuestService, ocf:vmha:HypervisorHealth
(see 'pcs resource describe ocf:vmha:<agent>' and 'man ocf_vmha_<agent>').
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command in ("version", "--version"):
        print(f"vmha {__version__}")
        return 0
    if command == "path-check":
        from vmha import path_check

        return path_check.main(rest)
    if command == "status":
        from vmha.ops import status

        return status.main(rest, env=os.environ)
    if command == "plan":
        from vmha.ops import plan

        return plan.main(rest, env=os.environ)
    if command == "lab":
        import importlib

        try:
            lab = importlib.import_module("vmha.lab.cli")
        except ImportError:
            sys.stderr.write("vmha lab is not available in this build\n")
            return 2
        return int(lab.main(rest))
    sys.stderr.write(f"vmha: unknown command {command!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
