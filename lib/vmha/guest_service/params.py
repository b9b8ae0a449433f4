"""GuestService's parameters.  Values that would reach the guest or the network are checked
here, so validate-all (and start) refuse them with rc 6 before anything runs."""

from __future__ import annotations

from vmha.agent_common import hypervisor_param
from vmha.ocf.params import Param, ParamType, Value
from vmha.verdicts import client_checks
from vmha.verdicts.guest_command import RefusedCommand, param_check
from vmha.verdicts.service_status import MANAGERS, check_service_name

S, INT, SEL = ParamType.STRING, ParamType.INTEGER, ParamType.SELECT


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


def _tcp(value: Value) -> str | None:
    try:
        client_checks.parse_tcp(str(value))
    except client_checks.CheckConfigError as exc:
        return str(exc)
    return None


def _http(value: Value) -> str | None:
    try:
        client_checks.parse_http(str(value))
    except client_checks.CheckConfigError as exc:
        return str(exc)
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
        "Client-path HTTP check",
        "http:// URL that a GET from this host must answer with http_status for the service "
        "to count as running. Redirects are not followed, no proxy is used, https is not "
        "supported. Empty: no HTTP check.",
        default="",
        reloadable=True,
        check=_http,
    ),
    Param(
        "http_status",
        INT,
        "Expected HTTP status",
        "The status code http_check expects.",
        default=200,
        minimum=100,
        maximum=599,
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
        "Seconds http_check may take in all, from name resolution to the status line.",
        default=5,
        minimum=1,
        reloadable=True,
    ),
)

RELOADABLE = frozenset(p.name for p in PARAMS if p.reloadable)
