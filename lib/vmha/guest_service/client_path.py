"""The client-path checks' I/O: one TCP connect, one HTTP GET, each with a hard time limit.

A socket timeout bounds each blocking step, not the whole: name resolution ignores it and a
server can trickle its headers one byte at a time.  So each check runs in a daemon thread and
we wait for it at most its timeout (``vmha.deadline.run_within``); a check still running then
is reported as timed out and abandoned (the agent process ends with ``os._exit``).

HTTP uses ``http.client`` directly: it never reads proxy variables (``urllib`` would) and
never follows a redirect, so the check sees exactly what the URL answers.
"""

from __future__ import annotations

import errno
import socket

from vmha.deadline import run_within
from vmha.verdicts.client_checks import HttpOutcome, HttpTarget, TcpOutcome, TcpTarget

USER_AGENT = "vmha-GuestService"
# The body is not judged; read a little so the server is not cut off mid-write, then close.
BODY_READ_BYTES = 4096

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


def _get(target: HttpTarget, timeout_s: float) -> HttpOutcome:
    import http.client

    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    try:
        conn.putrequest("GET", target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Accept", "*/*")
        conn.putheader("Connection", "close")
        conn.endheaders()
        resp = conn.getresponse()
        location = resp.getheader("Location") or ""
        try:
            resp.read(BODY_READ_BYTES)
        except (OSError, http.client.HTTPException):
            pass  # the status is what we judge
        return HttpOutcome(resp.status, location=location[:200])
    except (TimeoutError, socket.timeout):  # socket.timeout is not TimeoutError before 3.10
        return HttpOutcome(None, timed_out=True)
    except ConnectionRefusedError:
        return HttpOutcome(None, "connection refused")
    except socket.gaierror as exc:
        return HttpOutcome(None, f"cannot resolve {target.host}: {exc.strerror or exc}")
    except http.client.HTTPException as exc:
        return HttpOutcome(None, f"not an HTTP answer ({type(exc).__name__})")
    except OSError as exc:
        return HttpOutcome(None, str(exc.strerror or exc))
    finally:
        conn.close()


def http_get(target: HttpTarget, timeout_s: float) -> HttpOutcome:
    """The status a GET of ``target`` answers within ``timeout_s`` in all; never raises."""
    try:
        done, value = run_within(_get, timeout_s, target, timeout_s, name="http-check")
    except ValueError as exc:  # e.g. a host name IDNA cannot encode
        return HttpOutcome(None, str(exc))
    if not done or value is None:
        return HttpOutcome(None, timed_out=True)
    return value
