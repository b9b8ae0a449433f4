"""The client-path checks' I/O: one TCP connect, one HTTP GET, each with a hard time limit.

A socket timeout bounds each blocking step, not the whole: name resolution ignores it and a
server can trickle its headers one byte at a time.  So each check runs in a daemon thread and
we wait for it at most its timeout; a check still running then is reported as timed out and
abandoned (the agent process ends with ``os._exit``, nothing waits for it).

HTTP uses ``http.client`` directly: it never reads proxy variables (``urllib`` would) and
never follows a redirect, so the check sees exactly what the URL answers.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from vmha.probes.client_checks import HttpOutcome, HttpTarget, TcpOutcome, TcpTarget

T = TypeVar("T")
USER_AGENT = "vmha-GuestService"
# The body is not judged; read a little so the server is not cut off mid-write, then close.
BODY_READ_BYTES = 4096

_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})


def _within(fn: Callable[[], T], timeout_s: float, name: str) -> tuple[bool, T | None]:
    """(finished, value) of ``fn()`` run in a daemon thread for at most ``timeout_s``."""
    box: list[T] = []

    def work() -> None:
        box.append(fn())

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    thread.join(max(0.0, timeout_s))
    if thread.is_alive() or not box:
        return False, None
    return True, box[0]


def _tcp(target: TcpTarget, timeout_s: float) -> tuple[TcpOutcome, str]:
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout_s)
    except socket.gaierror as exc:
        return TcpOutcome.NAME_ERROR, str(exc.strerror or exc)
    except ConnectionRefusedError:
        return TcpOutcome.REFUSED, ""
    except TimeoutError:
        return TcpOutcome.TIMEOUT, ""
    except OSError as exc:
        if exc.errno in _UNREACHABLE:
            return TcpOutcome.UNREACHABLE, str(exc.strerror or exc)
        return TcpOutcome.ERROR, str(exc.strerror or exc)
    sock.close()
    return TcpOutcome.CONNECTED, ""


def tcp_connect(target: TcpTarget, timeout_s: float) -> tuple[TcpOutcome, str]:
    """Whether ``target`` accepts a TCP connection within ``timeout_s``; never raises."""
    done, value = _within(lambda: _tcp(target, timeout_s), timeout_s, "tcp-check")
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
    except TimeoutError:
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
    done, value = _within(lambda: _get(target, timeout_s), timeout_s, "http-check")
    if not done or value is None:
        return HttpOutcome(None, timed_out=True)
    return value
