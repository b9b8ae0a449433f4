"""``vmha lab up|status|down|exec|demo|soak``: the entry point the ``vmha`` command hands over to."""

from __future__ import annotations

import argparse
import sys

from vmha.lab.config import AGENTS, LabConfig

# ``vmha lab exec``'s own failure (no such host, host off), as env(1) and container runners
# say it: every other exit code is the command's
EXEC_CANNOT = 125


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vmha lab", description="a real HA cluster on this machine")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring a lab up and leave it running")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--agent", choices=sorted(AGENTS), default="vmha")
    up.add_argument("--vms", type=int, default=2)
    up.add_argument("--replace", action="store_true", help="take down a lab that is up first")
    sub.add_parser("status", help="power switch and crm_mon of the lab")
    sub.add_parser("down", help="stop everything the lab started")
    ex = sub.add_parser(
        "exec",
        help="run a command inside a lab host (its namespaces: its own cluster, libvirtd and /run)",
        description="Run CMD inside lab host HOST, e.g. 'vmha lab exec ha1 -- crm_mon -1' or "
        "'vmha lab exec ha2 -- bash'. Exit code: the command's, 125 when the lab cannot run it.",
    )
    ex.add_argument("host", metavar="HOST")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD")
    demo = sub.add_parser("demo", help="up, migrate, fail over, down; JSON figures last")
    demo.add_argument("--agent", choices=sorted(AGENTS), default="vmha")
    demo.add_argument("--replace", action="store_true")
    demo.add_argument(
        "--report", metavar="DIR", help="also write report.json and timeline.svg (the SVG timeline) into DIR"
    )
    from vmha.lab.soak import KINDS

    soak = sub.add_parser("soak", help="faults of every kind at random moments, invariants checked; JSON last")
    soak.add_argument("--faults", type=int, default=10, help="how many faults (default 10: one round)")
    soak.add_argument("--seed", type=int, default=None, help="replay a soak (default: a new seed, printed)")
    soak.add_argument("--only", nargs="+", choices=KINDS, default=[], metavar="KIND", help=f"of {', '.join(KINDS)}")
    soak.add_argument("--replace", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from vmha.lab.lab import Lab, LabError
    from vmha.ocf.runner import CommandError

    if args.command == "demo":
        from vmha.lab.demo import run_demo

        return run_demo(args.agent, replace=args.replace, report_dir=args.report)
    if args.command == "soak":
        from vmha.lab import soak

        return soak.main(args.faults, args.seed, args.only, replace=args.replace)
    lab = Lab()
    if args.command == "exec":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            print("vmha lab exec: no command given (vmha lab exec HOST -- CMD...)", file=sys.stderr)
            return EXEC_CANNOT
        try:
            return lab.exec_interactive(args.host, cmd)
        except LabError as exc:
            print(f"vmha lab exec: {exc}", file=sys.stderr)
            return EXEC_CANNOT
    try:
        if args.command == "up":
            cfg = LabConfig(nodes=args.nodes, agent=args.agent, vms=args.vms)
            from vmha.lab.signals import interrupts_as_exceptions

            with interrupts_as_exceptions():
                timings = lab.up(cfg, replace=args.replace)
            print(lab.crm_mon_text(), end="")
            print(" ".join(f"{k}={v}" for k, v in timings.items()))
            return 0
        if args.command == "status":
            print(lab.status_text(), end="")
            return 0 if lab.running() else 3
        if args.command == "down":
            problems = lab.down()
            for p in problems:
                print(f"vmha lab down: {p}", file=sys.stderr)
            return 1 if problems else 0
    except (LabError, CommandError, ValueError) as exc:
        print(f"vmha lab {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vmha lab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 2
