"""The client-path checks' I/O: one TCP connect, one HTTP(S) GET, each with a hard time limit
(the database checks' is ``vmha.guest_service.db_client``).

A socket timeout bounds each blocking step, not the whole: name resolution ignores it and a
server can trickle its headers one byte at a time.  So each check runs in a daemon thread and
we wait for it at most its timeout (``vmha.deadline.run_within``); a check still running then
is reported as timed out and abandoned (the agent process ends with ``os._exit``).

HTTP uses ``http.client`` directly: it never reads proxy variables (``urllib`` would) and
never follows a redirect, so the check sees exactly what the URL answers.  https verifies the
certificate and the host name against the system's CAs, or ``http_ca_file``'s, unless
``http_insecure``; the latency judged is from the request sent to the status line read
(connect and TLS handshake excluded: the timeout bounds those).
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

from vmha.deadline import run_within
from vmha.verdicts.client_checks import HttpOutcome, HttpTarget, TcpOutcome, TcpTarget

USER_AGENT = "vmha-GuestService"
# Without http_body the body is not judged: read a little so the server is not cut off
# mid-write, then close.  With it, the text must be in the first BODY_LIMIT bytes.
BODY_READ_BYTES = 4096
BODY_LIMIT = 65536

_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})


def _tcp(target: TcpTarget, timeout_s: float) -> tuple[TcpOutcome, str]:
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout_s)
    except socket.gaierror as exc:
        return TcpOutcome.NAME_ERROR, str(exc.strerror or exc)
    except ConnectionRefusedError:
        return TcpOutcome.REFUSED, ""
    except (TimeoutError, socket.timeout):  # socket.timeout is not TimeoutError before 3.10
        return TcpOutcome.TIMEOUT, ""
    except OSError as exc:
        if exc.errno in _UNREACHABLE:
            return TcpOutcome.UNREACHABLE, str(exc.strerror or exc)
        return TcpOutcome.ERROR, str(exc.strerror or exc)
    sock.close()
    return TcpOutcome.CONNECTED, ""


def tcp_connect(target: TcpTarget, timeout_s: float) -> tuple[TcpOutcome, str]:
    """Whether ``target`` accepts a TCP connection within ``timeout_s``; never raises."""
    try:
        done, value = run_within(_tcp, timeout_s, target, timeout_s, name="tcp-check")
    except (ValueError, OSError) as exc:  # e.g. a host name IDNA cannot encode
        return TcpOutcome.ERROR, str(exc)
    if not done or value is None:
        return TcpOutcome.TIMEOUT, ""
    return value


def _context(ca_file: str, insecure: bool) -> Any:
    import ssl

    ctx = ssl.create_default_context(cafile=ca_file or None)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(target: HttpTarget, timeout_s: float, body: str, ca_file: str, insecure: bool) -> HttpOutcome:
    import http.client

    conn: http.client.HTTPConnection
    if target.tls:
        try:
            ctx = _context(ca_file, insecure)
        except OSError as exc:  # an unreadable or invalid CA file (validate-all says so first)
            return HttpOutcome(None, f"http_ca_file: {exc.strerror or exc}")
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout_s, context=ctx)
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    try:
        conn.connect()
        t0 = time.monotonic()
        conn.putrequest("GET", target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Accept", "*/*")
        conn.putheader("Connection", "close")
        conn.endheaders()
        resp = conn.getresponse()
        seconds = time.monotonic() - t0
        location = resp.getheader("Location") or ""
        found: bool | None = None
        try:
            data = resp.read(BODY_LIMIT if body else BODY_READ_BYTES)
            if body:
                found = body.encode() in data
        except (OSError, http.client.HTTPException):
            pass  # the status is what we judge; a body check then fails (found stays None)
        return HttpOutcome(resp.status, location=location[:200], seconds=seconds, body_found=found)
    except (TimeoutError, socket.timeout):  # socket.timeout is not TimeoutError before 3.10
        return HttpOutcome(None, timed_out=True)
    except ConnectionRefusedError:
        return HttpOutcome(None, "connection refused")
    except socket.gaierror as exc:
        return HttpOutcome(None, f"cannot resolve {target.host}: {exc.strerror or exc}")
    except http.client.HTTPException as exc:
        return HttpOutcome(None, f"not an HTTP answer ({type(exc).__name__})")
    except OSError as exc:  # ssl.SSLError is one: its reason names the certificate problem
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc.strerror or exc
        if getattr(exc, "verify_message", None):
            reason = f"certificate verify failed: {reason}"
        return HttpOutcome(None, str(reason))
    finally:
        conn.close()


def http_get(
    target: HttpTarget, timeout_s: float, *, body: str = "", ca_file: str = "", insecure: bool = False
) -> HttpOutcome:
    """The status a GET of ``target`` answers within ``timeout_s`` in all; never raises.
    ``body``: also whether that text is in the first BODY_LIMIT bytes of the body."""
    try:
        done, value = run_within(_get, timeout_s, target, timeout_s, body, ca_file, insecure, name="http-check")
    except ValueError as exc:  # e.g. a host name IDNA cannot encode
        return HttpOutcome(None, str(exc))
    if not done or value is None:
        return HttpOutcome(None, timed_out=True)
    return value
