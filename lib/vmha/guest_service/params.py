"""GuestService's parameters.  Values that would reach the guest or the network are checked
here, so validate-all (and start) refuse them with rc 6 before anything runs."""

from __future__ import annotations

from collections.abc import Callable

from vmha.agent_common import hypervisor_param
from vmha.ocf.params import Param, ParamType, Value
from vmha.verdicts import client_checks
from vmha.verdicts.guest_command import RefusedCommand, param_check
from vmha.verdicts.service_status import MANAGERS, check_service_name

S, INT, SEL, BOOL = ParamType.STRING, ParamType.INTEGER, ParamType.SELECT, ParamType.BOOLEAN


def _domain(value: Value) -> str | None:
    text = str(value)
    if any(not ch.isprintable() for ch in text) or "/" in text or len(text) > 255:
        return f"{text!r} is not a domain name or UUID"
    return None


def _service(value: Value) -> str | None:
    try:
        check_service_name(str(value))
    except RefusedCommand as exc:
        return str(exc)
    return None


def _parses(parse: Callable[[str], object]) -> Callable[[Value], str | None]:
    """A parameter check from a client-path parser: its CheckConfigError is the reason."""

    def check(value: Value) -> str | None:
        try:
            parse(str(value))
        except client_checks.CheckConfigError as exc:
            return str(exc)
        return None

    return check


def _parse_db(text: str) -> object:
    from vmha.verdicts import db_checks  # only where db_check is set

    return db_checks.parse_db(text)


_tcp = _parses(client_checks.parse_tcp)
_http = _parses(client_checks.parse_http)
_statuses = _parses(client_checks.parse_statuses)
_db = _parses(_parse_db)


def _absolute(value: Value) -> str | None:
    text = str(value)
    if not text.startswith("/") or any(not ch.isprintable() for ch in text):
        return f"{text!r} is not an absolute path"
    return None


_COMMAND_NOTE = (
    "Split into words like a shell would (quotes group words), but no shell ever runs it: "
    "the first word must be an absolute path in the guest, and shell metacharacters "
    "(; & | < > $ ` \\ * ? ~ ! # and brackets) are refused."
)

PARAMS: tuple[Param, ...] = (
    Param(
        "domain",
        S,
        "Domain name or UUID",
        "The libvirt domain the service runs in: its name or its UUID. Group or colocate this "
        "resource with the VirtualMachine resource of that domain and order it after it.",
        required=True,
        check=_domain,
    ),
    hypervisor_param("libvirt connection URI of the local hypervisor (as for VirtualMachine)."),
    Param(
        "service",
        S,
        "Service name",
        "The service inside the guest, as its manager names it (e.g. nginx, postgresql@15-main). "
        "Letters, digits and @._:- only. Required unless manager is commands.",
        default="",
        check=_service,
    ),
    Param(
        "manager",
        SEL,
        "How the service is managed",
        "systemd (systemctl start|stop|is-active), sysv (/etc/init.d/<service> start|stop|status), "
        "openrc (rc-service <service> start|stop|status), or commands (start_command, "
        "stop_command and status_command).",
        default="systemd",
        options=MANAGERS,
    ),
    Param(
        "start_command",
        S,
        "Start command (manager=commands)",
        "Program and arguments that start the service in the guest. " + _COMMAND_NOTE,
        default="",
        check=param_check("start_command"),
    ),
    Param(
        "stop_command",
        S,
        "Stop command (manager=commands)",
        "Program and arguments that stop the service in the guest. " + _COMMAND_NOTE,
        default="",
        check=param_check("stop_command"),
    ),
    Param(
        "status_command",
        S,
        "Status command (manager=commands)",
        "Program and arguments that report the service's state in the guest by their exit code, "
        "as an LSB status action does: 0 running, 3 stopped, 1 or 2 dead, anything else "
        "unknown. " + _COMMAND_NOTE,
        default="",
        check=param_check("status_command"),
    ),
    Param(
        "tcp_check",
        S,
        "Client-path TCP check",
        "host:port (IPv6 as [addr]:port) that must accept a TCP connection from this host "
        "for the service to count as running. Empty: no TCP check.",
        default="",
        reloadable=True,
        check=_tcp,
    ),
    Param(
        "http_check",
        S,
        "Client-path HTTP(S) check",
        "http:// or https:// URL that a GET from this host must answer with one of http_status "
        "(and http_body, within http_max_latency_ms, when set) for the service to count as "
        "running. Redirects are not followed and no proxy is used; https verifies the "
        "certificate and host name (system CAs, or http_ca_file) unless http_insecure. "
        "Empty: no HTTP check.",
        default="",
        reloadable=True,
        check=_http,
    ),
    Param(
        "http_status",
        S,
        "Expected HTTP statuses",
        "The statuses http_check accepts: one (200), a list (200,204) or ranges (200-299,301).",
        default="200",
        reloadable=True,
        check=_statuses,
    ),
    Param(
        "http_body",
        S,
        "Expected text in the HTTP body",
        "Text that must appear in the first 64 KiB of http_check's answer (e.g. a health "
        "page's 'ok'). Empty: the body is not looked at.",
        default="",
        reloadable=True,
    ),
    Param(
        "http_max_latency_ms",
        INT,
        "HTTP latency ceiling (ms)",
        "An answer whose status line comes later than this after the request was sent fails "
        "the check ('HTTP slow'). 0: no ceiling (http_timeout still bounds it).",
        default=0,
        minimum=0,
        reloadable=True,
    ),
    Param(
        "http_ca_file",
        S,
        "CA bundle for https",
        "PEM file of the CAs that sign http_check's certificate, instead of the system's.",
        default="",
        reloadable=True,
        check=_absolute,
    ),
    Param(
        "http_insecure",
        BOOL,
        "Skip certificate verification",
        "true: an https http_check accepts any certificate and host name (the path is still "
        "checked, its identity is not).",
        default=False,
        reloadable=True,
    ),
    Param(
        "db_check",
        S,
        "Client-path database check",
        "postgresql://[user@]host[:port][/dbname] or mysql://[user@]host[:port][/dbname] "
        "(MySQL and MariaDB): the server must answer its protocol's startup exchange from this "
        "host for the service to count as running. PostgreSQL's starting up, shutting down, "
        "in recovery, too many connections and a failed login are told apart in the exit "
        "reason. With db_password_file (or, for MySQL, a user) it logs in and runs a trivial "
        "query. No password in the URL: it would be in the CIB. PostgreSQL's user defaults to "
        "postgres, its database to the user. Empty: no database check.",
        default="",
        reloadable=True,
        check=_db,
    ),
    Param(
        "db_password_file",
        S,
        "Password file for db_check",
        "A file of root's, mode 0600 or tighter, whose first line is the password of "
        "db_check's user. Never logged, never in the CIB; validate-all refuses a file others "
        "can read.",
        default="",
        reloadable=True,
        check=_absolute,
    ),
    Param(
        "db_require_primary",
        BOOL,
        "Fail on a read-only standby",
        "true: db_check fails when the server is a standby in recovery (PostgreSQL's "
        "pg_is_in_recovery()) or read-only (MySQL's read_only); it needs to log in.",
        default=False,
        reloadable=True,
    ),
    Param(
        "agent_timeout",
        INT,
        "Guest agent timeout (s)",
        "Seconds the guest agent may take to answer a ping or to run the status command. "
        "start and stop commands may take until their operation's timeout.",
        default=10,
        minimum=2,
        reloadable=True,
    ),
    Param(
        "tcp_timeout",
        INT,
        "TCP check timeout (s)",
        "Seconds tcp_check may take, name resolution included.",
        default=5,
        minimum=1,
        reloadable=True,
    ),
    Param(
        "http_timeout",
        INT,
        "HTTP check timeout (s)",
        "Seconds http_check may take in all, from name resolution to the status line (and the body, with http_body).",
        default=5,
        minimum=1,
        reloadable=True,
    ),
    Param(
        "db_timeout",
        INT,
        "Database check timeout (s)",
        "Seconds db_check may take in all: connect, the startup exchange, the login and the query.",
        default=5,
        minimum=1,
        reloadable=True,
    ),
)

RELOADABLE = frozenset(p.name for p in PARAMS if p.reloadable)
