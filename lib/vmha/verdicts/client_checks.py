"""Client-path checks: what a client of the service sees from the host, judged without I/O.

``tcp_check=host:port`` passes when a TCP connection is accepted; ``http_check=URL`` (http or
https) passes when a GET answers one of the expected statuses, with ``http_body`` in its body
and within ``http_max_latency_ms`` when those are set.  The I/O lives in ``vmha.guest_service.client_path``; here
are the parsers (used by validate-all, so a bad value is refused before anything runs) and
the verdicts, whose reasons start with the layer that failed, because pacemaker-execd keeps
only the first 128 bytes of an exit reason::

    port closed: 10.0.0.5:5432 refused the connection
    port unreachable: 10.0.0.5:5432 (no route to host)
    port timeout: 10.0.0.5:5432 did not accept within 5s
    HTTP 500: http://10.0.0.5/health (expected 200)
    HTTP timeout: http://10.0.0.5/health did not answer within 5s
    HTTP error: http://10.0.0.5/health: connection refused
    HTTP error: https://10.0.0.5/health: certificate verify failed: self-signed certificate
    HTTP body: http://10.0.0.5/health answered 200 without 'ok'
    HTTP slow: http://10.0.0.5/health answered in 812 ms (ceiling 500 ms)

The database checks are ``vmha.verdicts.db_checks``.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple


class CheckConfigError(ValueError):
    """A check's parameter that cannot be used; the message names the parameter."""


class TcpTarget(NamedTuple):
    host: str
    port: int

    def describe(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class HttpTarget(NamedTuple):
    url: str
    host: str
    port: int
    path: str
    # The Host header: what the URL said, port included when not the default.
    host_header: str
    tls: bool = False  # https: the certificate is verified unless http_insecure


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})\Z")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}\Z")


def _host(text: str, param: str) -> str:
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        if _IPV6.match(inner) and ":" in inner:
            return inner
        raise CheckConfigError(f"{param}: {text!r} is not an IPv6 address")
    if not _HOSTNAME.match(text):
        raise CheckConfigError(f"{param}: {text!r} is not a host name or address")
    return text


def _port(text: str, param: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise CheckConfigError(f"{param}: port {text!r} is not a number from 1 to 65535")
    return int(text)


def parse_host_port(authority: str, param: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6addr][:port]`` of a URL. Raises CheckConfigError."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise CheckConfigError(f"{param}: {authority!r} has an unclosed IPv6 bracket")
        host_text, after = authority[: end + 1], authority[end + 1 :]
        if after and not after.startswith(":"):
            raise CheckConfigError(f"{param}: {authority!r} is not host[:port]")
        port_text = after[1:]
    else:
        host_text, _sep, port_text = authority.partition(":")
    if not host_text:
        raise CheckConfigError(f"{param}: no host in {authority!r}")
    return _host(host_text, param), _port(port_text, param) if port_text else default_port


def parse_tcp(text: str) -> TcpTarget:
    """``host:port`` or ``[v6addr]:port``. Raises CheckConfigError."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise CheckConfigError(f"tcp_check: {text!r} is not host:port (IPv6 as [addr]:port)")
    return TcpTarget(_host(host, "tcp_check"), _port(port, "tcp_check"))


def parse_http(text: str) -> HttpTarget:
    """An ``http://`` or ``https://host[:port][/path]`` URL. Raises CheckConfigError.

    No user:password in the URL (it would show in the CIB and in every log line).
    """
    url = text.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise CheckConfigError("http_check: the URL contains whitespace or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise CheckConfigError(f"http_check: {url!r} is not an http:// or https:// URL")
    tls = scheme.lower() == "https"
    authority, slash, path = rest.partition("/")
    path = "/" + path if slash else "/"
    if "#" in path:
        path = path.split("#", 1)[0]
    if "@" in authority:
        raise CheckConfigError("http_check: user or password in the URL are not supported")
    host, port = parse_host_port(authority, "http_check", 443 if tls else 80)
    return HttpTarget(url, host, port, path, authority, tls)


def parse_statuses(text: str, param: str = "http_status") -> tuple[tuple[int, int], ...]:
    """``200``, ``200,204`` or ``200-299,301``: the statuses that pass, as closed ranges.
    Raises CheckConfigError."""
    ranges = []
    for part in text.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise CheckConfigError(f"{param}: {text!r} is not a list of statuses (e.g. 200,204 or 200-299)")
        a, b = int(low), int(high) if dash else int(low)
        if not 100 <= a <= b <= 599:
            raise CheckConfigError(f"{param}: {part!r} is not a status from 100 to 599 (low-high)")
        ranges.append((a, b))
    return tuple(ranges)


def describe_statuses(ranges: tuple[tuple[int, int], ...]) -> str:
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


class CheckResult(NamedTuple):
    ok: bool
    reason: str = ""


class TcpOutcome(Enum):
    CONNECTED = "connected"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    NAME_ERROR = "name error"
    ERROR = "error"


def judge_tcp(target: TcpTarget, outcome: TcpOutcome, timeout_s: float, detail: str = "") -> CheckResult:
    where = target.describe()
    extra = f" ({detail})" if detail else ""
    if outcome is TcpOutcome.CONNECTED:
        return CheckResult(True)
    if outcome is TcpOutcome.REFUSED:
        return CheckResult(False, f"port closed: {where} refused the connection")
    if outcome is TcpOutcome.TIMEOUT:
        return CheckResult(False, f"port timeout: {where} did not accept within {timeout_s:g}s")
    if outcome is TcpOutcome.UNREACHABLE:
        return CheckResult(False, f"port unreachable: {where}{extra}")
    if outcome is TcpOutcome.NAME_ERROR:
        return CheckResult(False, f"port check: cannot resolve {target.host}{extra}")
    return CheckResult(False, f"port check: {where}{extra}")


class HttpOutcome(NamedTuple):
    """What the GET got: a status, or why it got none."""

    status: int | None
    error: str = ""
    timed_out: bool = False
    location: str = ""
    seconds: float | None = None  # request sent -> status line read (the latency judged)
    body_found: bool | None = None  # whether http_body was in the body's first BODY_LIMIT bytes


def judge_http(
    target: HttpTarget,
    outcome: HttpOutcome,
    expected: int | tuple[tuple[int, int], ...],
    timeout_s: float,
    *,
    body: str = "",
    max_latency_ms: int = 0,
) -> CheckResult:
    ranges = ((expected, expected),) if isinstance(expected, int) else expected
    if outcome.timed_out:
        return CheckResult(False, f"HTTP timeout: {target.url} did not answer within {timeout_s:g}s")
    if outcome.status is None:
        return CheckResult(False, f"HTTP error: {target.url}: {outcome.error or 'no answer'}")
    if not any(a <= outcome.status <= b for a, b in ranges):
        note = ""
        if 300 <= outcome.status < 400:
            note = f", redirects are not followed{' (to ' + outcome.location + ')' if outcome.location else ''}"
        return CheckResult(False, f"HTTP {outcome.status}: {target.url} (expected {describe_statuses(ranges)}{note})")
    if body and not outcome.body_found:
        return CheckResult(False, f"HTTP body: {target.url} answered {outcome.status} without {body[:40]!r}")
    if max_latency_ms and outcome.seconds is not None and outcome.seconds * 1000 > max_latency_ms:
        return CheckResult(
            False, f"HTTP slow: {target.url} answered in {outcome.seconds * 1000:.0f} ms (ceiling {max_latency_ms} ms)"
        )
    return CheckResult(True)
