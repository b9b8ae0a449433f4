"""The client-path checks' I/O (vmha.guest_service.client_path) against real listeners on 127.0.0.1:
an open port, a closed one, a server that never answers, HTTP servers answering 200, 500 and
a redirect, and one that trickles its headers (the whole check must still end in time)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from vmha.guest_service import client_path
from vmha.verdicts import client_checks as cc


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 with nothing listening (bound then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def silent_server():
    """Accepts connections (backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Handler.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
        else:
            code = 200
        if self.path == "/slow":
            time.sleep(0.3)
        self.send_response(code)
        if code == 302:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Handler.seen.clear()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def trickling_server():
    """Answers one byte of its status line every 0.3 s: no single read times out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            for ch in b"HTTP/1.1 200 OK\r\n":
                if stop.wait(0.3):
                    break
                try:
                    conn.send(bytes([ch]))
                except OSError:
                    break
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(2)
    sock.close()


def test_tcp_open(http_server):
    assert client_path.tcp_connect(cc.TcpTarget("127.0.0.1", http_server), 2.0) == (cc.TcpOutcome.CONNECTED, "")


def test_tcp_closed(closed_port):
    target = cc.TcpTarget("127.0.0.1", closed_port)
    outcome, detail = client_path.tcp_connect(target, 2.0)
    assert outcome is cc.TcpOutcome.REFUSED
    assert cc.judge_tcp(target, outcome, 2.0, detail).reason.startswith("port closed: 127.0.0.1:")


def test_tcp_name_error():
    outcome, _ = client_path.tcp_connect(cc.TcpTarget("no-such-host.invalid", 80), 2.0)
    assert outcome in (cc.TcpOutcome.NAME_ERROR, cc.TcpOutcome.TIMEOUT)


def test_http_200_and_what_is_sent(http_server):
    target = cc.parse_http(f"http://127.0.0.1:{http_server}/health?x=1")
    got = client_path.http_get(target, 2.0)
    assert got._replace(seconds=None) == cc.HttpOutcome(200)
    assert got.seconds is not None and 0 < got.seconds < 2.0
    (req,) = Handler.seen
    assert req["path"] == "/health?x=1"
    assert req["host"] == f"127.0.0.1:{http_server}"
    assert req["user-agent"] == client_path.USER_AGENT


def test_http_500(http_server):
    target = cc.parse_http(f"http://127.0.0.1:{http_server}/status/500")
    outcome = client_path.http_get(target, 2.0)
    assert outcome.status == 500
    assert cc.judge_http(target, outcome, 200, 2.0).reason.startswith("HTTP 500: ")


def test_http_redirect_is_not_followed(http_server):
    target = cc.parse_http(f"http://127.0.0.1:{http_server}/status/302")
    outcome = client_path.http_get(target, 2.0)
    assert (outcome.status, outcome.location) == (302, "/elsewhere")
    assert len(Handler.seen) == 1


def test_http_ignores_proxy_variables(http_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    target = cc.parse_http(f"http://127.0.0.1:{http_server}/")
    assert client_path.http_get(target, 2.0).status == 200


def test_http_refused(closed_port):
    outcome = client_path.http_get(cc.parse_http(f"http://127.0.0.1:{closed_port}/"), 2.0)
    assert (outcome.status, outcome.error) == (None, "connection refused")


def test_http_silent_server_times_out(silent_server):
    t0 = time.monotonic()
    outcome = client_path.http_get(cc.parse_http(f"http://127.0.0.1:{silent_server}/"), 0.5)
    assert outcome.timed_out
    assert time.monotonic() - t0 < 1.0


def test_http_trickling_server_is_cut_at_the_timeout(trickling_server):
    t0 = time.monotonic()
    outcome = client_path.http_get(cc.parse_http(f"http://127.0.0.1:{trickling_server}/"), 1.0)
    assert outcome.timed_out
    assert time.monotonic() - t0 < 1.5


def test_not_http():
    # A server that answers garbage then closes.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]

    def serve():
        conn, _ = sock.accept()
        conn.recv(1024)
        conn.sendall(b"SSH-2.0-OpenSSH\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    outcome = client_path.http_get(cc.parse_http(f"http://127.0.0.1:{port}/"), 2.0)
    sock.close()
    assert outcome.status is None and "not an HTTP answer" in outcome.error


def test_a_host_name_that_cannot_be_encoded_is_an_error_not_an_exception():
    from vmha.guest_service import client_path
    from vmha.verdicts.client_checks import HttpTarget, TcpOutcome, TcpTarget

    label = "a" * 70  # one DNS label longer than 63: the IDNA codec refuses it
    outcome, detail = client_path.tcp_connect(TcpTarget(label, 80), 1.0)
    assert outcome is TcpOutcome.ERROR and detail
    got = client_path.http_get(HttpTarget(f"http://{label}/", label, 80, "/", label), 1.0)
    assert got.status is None and not got.timed_out


def _self_signed(d, san):
    """A self-signed certificate for ``san`` (openssl, as an operator would make one)."""
    import subprocess

    name = san.replace(":", "_")
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=vmha-test",
         "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return {"ours": _self_signed(d, "IP:127.0.0.1"), "other": _self_signed(d, "IP:192.0.2.9")}


@contextlib.contextmanager
def _https(cert):
    import ssl

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_https_verifies_the_certificate_unless_told_otherwise(tls_certs):
    cert = tls_certs["ours"]
    with _https(cert) as port:
        target = cc.parse_http(f"https://127.0.0.1:{port}/health")
        assert target.tls and target.port == port
        refused = client_path.http_get(target, 3.0)
        assert refused.status is None and refused.error.startswith("certificate verify failed: self"), refused
        reason = cc.judge_http(target, refused, 200, 3.0).reason
        assert reason.startswith(f"HTTP error: {target.url}: certificate verify")
        assert client_path.http_get(target, 3.0, ca_file=str(cert[0])).status == 200
        assert client_path.http_get(target, 3.0, insecure=True).status == 200
    other = tls_certs["other"]  # trusted, but for another address than the one asked
    with _https(other) as port:
        target = cc.parse_http(f"https://127.0.0.1:{port}/health")
        wrong = client_path.http_get(target, 3.0, ca_file=str(other[0]))
        assert wrong.status is None and wrong.error.startswith("certificate verify failed: IP address mismatch"), wrong
        assert client_path.http_get(target, 3.0, ca_file=str(other[0]), insecure=True).status == 200


def test_http_statuses_body_and_latency(http_server):
    base = f"http://127.0.0.1:{http_server}"
    ok_range = cc.parse_statuses("200-299,301")
    assert ok_range == ((200, 299), (301, 301))
    t = cc.parse_http(base + "/status/204")
    assert cc.judge_http(t, client_path.http_get(t, 2.0), ok_range, 2.0).ok
    t = cc.parse_http(base + "/status/500")
    assert cc.judge_http(t, client_path.http_get(t, 2.0), ok_range, 2.0).reason.endswith("(expected 200-299,301)")
    t = cc.parse_http(base + "/health")
    found = client_path.http_get(t, 2.0, body="ok")
    assert found.body_found is True and cc.judge_http(t, found, 200, 2.0, body="ok").ok
    missing = client_path.http_get(t, 2.0, body="healthy")
    reason = cc.judge_http(t, missing, 200, 2.0, body="healthy").reason
    assert reason == f"HTTP body: {t.url} answered 200 without 'healthy'"
    slow = cc.parse_http(base + "/slow")
    answer = client_path.http_get(slow, 2.0)
    assert answer.seconds is not None and answer.seconds >= 0.3
    reason = cc.judge_http(slow, answer, 200, 2.0, max_latency_ms=100).reason
    assert reason.startswith(f"HTTP slow: {slow.url} answered in ") and reason.endswith("ms (ceiling 100 ms)")
    assert cc.judge_http(slow, answer, 200, 2.0, max_latency_ms=5000).ok
