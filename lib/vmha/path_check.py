"""``vmha path-check URL...``: GuestService's client-path checks by hand, the way an operator
tries a check before putting it in a resource.  Each URL is checked from this host with the
agent's own code and judged by the agent's own verdicts, so the line printed is the exit
reason the resource would give.

URLs: ``tcp://host:port``, ``http://`` and ``https://``, ``postgresql://`` (``postgres://``),
``mysql://`` (``mariadb://``).  Exit code 0 when every check passes, 1 when one does not, 2
for bad input (a URL or an option that the agent's validate-all would refuse as well).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from vmha.verdicts import client_checks

DB_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb")


class BadInput(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vmha path-check",
        description="Run GuestService's client-path checks from this host and print the verdicts.",
    )
    p.add_argument("urls", nargs="+", metavar="URL", help="tcp://, http(s)://, postgresql:// or mysql:// URL")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per check (default 5)")
    p.add_argument("--password-file", default="", help="root-only file with the database password (db_password_file)")
    p.add_argument("--require-primary", action="store_true", help="a read-only standby fails (db_require_primary)")
    p.add_argument("--status", default="200", help="expected HTTP statuses, e.g. 200,204 or 200-299 (http_status)")
    p.add_argument("--body", default="", help="text the HTTP body must contain (http_body)")
    p.add_argument("--max-latency-ms", type=int, default=0, help="HTTP latency ceiling (http_max_latency_ms)")
    p.add_argument("--ca-file", default="", help="CA bundle for https (http_ca_file)")
    p.add_argument("--insecure", action="store_true", help="accept any https certificate (http_insecure)")
    return p


def _validate(url: str, opts: argparse.Namespace) -> None:
    """Raises CheckConfigError or BadInput, before any check runs."""
    scheme = url.partition("://")[0].lower()
    if scheme == "tcp":
        client_checks.parse_tcp(url.partition("://")[2].rstrip("/"))
    elif scheme in ("http", "https"):
        client_checks.parse_http(url)
        client_checks.parse_statuses(opts.status, "--status")
    elif scheme in DB_SCHEMES:
        from vmha.verdicts.db_checks import parse_db

        parse_db(url, "URL")
    else:
        raise BadInput(f"{url!r}: not a tcp://, http(s)://, postgresql:// or mysql:// URL")


def _one(url: str, opts: argparse.Namespace, password: str | None) -> tuple[bool, str]:
    from vmha.guest_service import client_path

    scheme = url.partition("://")[0].lower()
    if scheme == "tcp":
        target = client_checks.parse_tcp(url.partition("://")[2].rstrip("/"))
        outcome, detail = client_path.tcp_connect(target, opts.timeout)
        r = client_checks.judge_tcp(target, outcome, opts.timeout, detail)
        return r.ok, r.reason
    if scheme in ("http", "https"):
        htarget = client_checks.parse_http(url)
        statuses = client_checks.parse_statuses(opts.status, "--status")
        answer = client_path.http_get(
            htarget, opts.timeout, body=opts.body, ca_file=opts.ca_file, insecure=opts.insecure
        )
        r = client_checks.judge_http(
            htarget, answer, statuses, opts.timeout, body=opts.body, max_latency_ms=opts.max_latency_ms
        )
        detail = f"HTTP {answer.status} in {answer.seconds * 1000:.0f} ms" if answer.seconds is not None else ""
        return r.ok, r.reason or detail
    if scheme in DB_SCHEMES:
        from vmha.guest_service.db_client import db_check
        from vmha.verdicts.db_checks import judge_db, parse_db

        dtarget = parse_db(url, "URL")
        found = db_check(dtarget, password, opts.timeout)
        r = judge_db(dtarget, found, require_primary=opts.require_primary, timeout_s=opts.timeout)
        ver = f", server {found.version}" if found.version else ""
        return r.ok, r.reason or f"{found.state.value}{ver}"
    raise BadInput(f"{url!r}: not a tcp://, http(s)://, postgresql:// or mysql:// URL")


def check(
    url: str,
    *,
    timeout: float,
    password_file: str = "",
    require_primary: bool = False,
    status: str = "",
    body: str = "",
    max_latency_ms: int = 0,
    ca_file: str = "",
    insecure: bool = False,
) -> tuple[bool, str]:
    """One check as the agent runs it (vmha status: a GuestService's own parameters): (ok,
    the reason the agent would give).  Raises ValueError for what validate-all refuses (a
    bad URL, a password file readable by others)."""
    opts = _parser().parse_args(["--timeout", str(timeout), url])
    opts.require_primary, opts.status, opts.body = require_primary, status or "200", body
    opts.max_latency_ms, opts.ca_file, opts.insecure = max_latency_ms, ca_file, insecure
    password = None
    if password_file:
        from vmha.guest_service.db_client import read_password_file

        password = read_password_file(password_file)
    try:
        _validate(url, opts)
    except BadInput as exc:
        raise ValueError(str(exc)) from None
    return _one(url, opts, password)


def main(argv: list[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        opts = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if not 0 < opts.timeout <= 300:
        err.write("vmha path-check: --timeout must be above 0 and at most 300 seconds\n")
        return 2
    password = None
    if opts.password_file:
        from vmha.guest_service.db_client import read_password_file

        try:
            password = read_password_file(opts.password_file)
        except ValueError as exc:
            err.write(f"vmha path-check: {exc}\n")
            return 2
    try:
        for url in opts.urls:
            _validate(url, opts)
    except (client_checks.CheckConfigError, BadInput) as exc:
        err.write(f"vmha path-check: {exc}\n")
        return 2
    worst = 0
    for url in opts.urls:
        ok, text = _one(url, opts, password)
        out.write(f"{'ok  ' if ok else 'FAIL'} {url}{': ' + text if text else ''}\n")
        worst = max(worst, 0 if ok else 1)
    return worst
