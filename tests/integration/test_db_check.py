"""db_check against real servers: a private PostgreSQL 15 (SCRAM, MD5 and trust logins, a
hot standby, a standby with hot_standby off, a smart shutdown in progress, no slot left, a
SIGSTOPped postmaster) and a private MariaDB (greeting, native-password login, too many
connections, read-only), all on 127.0.0.1 (tests/support/databases.py).  What the wire
exchange of vmha.guest_service.db_client gets from each, judged as the agent judges it."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmha.guest_service.db_client import db_check
from vmha.verdicts.db_checks import DbState, judge_db, parse_db

from tests.support import databases

needs_pg = pytest.mark.skipif(not databases.have_postgres(), reason="needs root and postgresql-15 (make deps)")
needs_maria = pytest.mark.skipif(not databases.have_mariadb(), reason="needs mariadb-server-core (make deps)")


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[databases.Postgres]:
    if not databases.have_postgres():
        pytest.skip("needs root and postgresql-15")
    server = databases.Postgres()
    server.initdb()
    server.start("-c max_connections=8 -c superuser_reserved_connections=0")
    try:
        server.setup_roles()
        yield server
    finally:
        server.stop()


def check(url: str, password: str | None = None, timeout: float = 5.0, primary: bool = False) -> tuple[DbState, str]:
    target = parse_db(url)
    t0 = time.monotonic()
    outcome = db_check(target, password, timeout)
    assert time.monotonic() - t0 < timeout + 1.0
    result = judge_db(target, outcome, require_primary=primary, timeout_s=timeout)
    return outcome.state, result.reason


def _pg_session(port: int) -> socket.socket:
    """A logged-in, idle session (postgres, trust): it holds a connection slot."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    body = struct.pack("!I", 196608) + b"user\0postgres\0\0"
    sock.sendall(struct.pack("!I", len(body) + 4) + body)
    seen = b""
    while b"Z\0\0\0\x05" not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    return sock


@needs_pg
class TestPostgres:
    def test_trust_login_runs_the_query(self, pg: databases.Postgres) -> None:
        assert check(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres") == (DbState.READY, "")
        assert check(f"postgresql://127.0.0.1:{pg.port}", primary=True) == (DbState.READY, "")

    def test_scram_login(self, pg: databases.Postgres) -> None:
        assert check(f"postgresql://app@127.0.0.1:{pg.port}/appdb", "app-secret", primary=True) == (DbState.READY, "")

    def test_md5_login(self, pg: databases.Postgres) -> None:
        assert check(f"postgresql://md5user@127.0.0.1:{pg.port}/appdb", "md5-secret")[0] is DbState.READY

    def test_without_a_password_the_startup_exchange_is_enough_unless_primary_is_required(
        self, pg: databases.Postgres
    ) -> None:
        url = f"postgresql://app@127.0.0.1:{pg.port}/appdb"
        assert check(url) == (DbState.LOGIN_NEEDED, "")
        state, reason = check(url, primary=True)
        assert state is DbState.LOGIN_NEEDED and reason.startswith("db login needed:"), reason

    def test_a_wrong_password_is_a_failed_login(self, pg: databases.Postgres) -> None:
        state, reason = check(f"postgresql://app@127.0.0.1:{pg.port}/appdb", "wrong")
        assert state is DbState.LOGIN_FAILED
        assert reason.startswith("db login failed:") and "password authentication failed" in reason, reason
        assert "wrong" not in reason

    def test_a_missing_database_is_an_error_naming_it(self, pg: databases.Postgres) -> None:
        state, reason = check(f"postgresql://postgres@127.0.0.1:{pg.port}/nosuchdb")
        assert state is DbState.ERROR and 'database "nosuchdb" does not exist' in reason, reason

    def test_no_slot_left(self, pg: databases.Postgres) -> None:
        held = []
        try:
            while len(held) < 8:
                held.append(_pg_session(pg.port))
            state, reason = check(f"postgresql://app@127.0.0.1:{pg.port}/appdb", "app-secret")
        finally:
            for s in held:
                s.close()
        assert state is DbState.TOO_MANY and reason.startswith("db too many connections:"), reason

    def test_a_stopped_postmaster_times_out_inside_the_timeout(self, pg: databases.Postgres) -> None:
        pid = pg.postmaster_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            state, reason = check(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres", timeout=2.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert state is DbState.TIMEOUT and reason.startswith("db timeout:") and "within 2s" in reason, reason
        assert check(f"postgresql://127.0.0.1:{pg.port}")[0] is DbState.READY


@needs_pg
def test_standby_and_shutdown() -> None:
    """A hot standby is ready but not primary; with hot_standby off it refuses connections
    (in recovery); a primary in a smart shutdown says it is shutting down."""
    primary = databases.Postgres()
    primary.initdb()
    (primary.data / "postgresql.auto.conf").write_text("wal_level = replica\n")
    primary.start()
    standby = None
    try:
        standby = primary.standby()
        url = f"postgresql://127.0.0.1:{standby.port}"
        assert check(url) == (DbState.STANDBY, "")
        state, reason = check(url, primary=True)
        assert state is DbState.STANDBY and reason.startswith("db standby:"), reason
        standby.stop(remove=False)
        (standby.data / "standby.signal").touch()
        standby.start("-c hot_standby=off")
        state, reason = check(url)
        assert state is DbState.RECOVERY and reason.startswith("db in recovery:"), reason

        held = _pg_session(primary.port)  # a smart shutdown waits for it
        try:
            subprocess.run(
                [str(databases.PG_BIN / "pg_ctl"), "-D", str(primary.data), "-m", "smart", "-W", "stop"],
                user="postgres",
                check=True,
                capture_output=True,
                timeout=30,
            )
            deadline = time.monotonic() + 10
            while (got := check(f"postgresql://127.0.0.1:{primary.port}"))[0] is DbState.READY:
                assert time.monotonic() < deadline, got
                time.sleep(0.1)
        finally:
            held.close()
        assert got[0] is DbState.SHUTTING_DOWN and got[1].startswith("db shutting down:"), got
        assert "the database system is shutting down" in got[1]
    finally:
        for s in (standby, primary):
            if s is not None:
                s.stop()


@pytest.fixture(scope="module")
def maria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[databases.MariaDB]:
    if not databases.have_mariadb():
        pytest.skip("needs mariadb-server-core")
    server = databases.MariaDB(tmp_path_factory.mktemp("maria"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@needs_maria
class TestMariaDB:
    def test_greeting_only_without_a_user(self, maria: databases.MariaDB) -> None:
        assert check(f"mysql://127.0.0.1:{maria.port}") == (DbState.READY, "")

    def test_native_password_login_and_query(self, maria: databases.MariaDB) -> None:
        assert check(f"mysql://app@127.0.0.1:{maria.port}/appdb", "app-secret", primary=True) == (DbState.READY, "")
        assert check(f"mariadb://nopass@127.0.0.1:{maria.port}")[0] is DbState.READY

    def test_a_wrong_password_is_a_failed_login(self, maria: databases.MariaDB) -> None:
        state, reason = check(f"mysql://app@127.0.0.1:{maria.port}", "wrong")
        assert state is DbState.LOGIN_FAILED and "Access denied" in reason, reason

    def test_too_many_connections_at_login(self, maria: databases.MariaDB) -> None:
        # MariaDB counts a connection against max_connections once it logs in (so a
        # greeting-only check cannot see this: it needs a user in the URL)
        held = [
            subprocess.Popen(
                [
                    "/usr/bin/mariadb",
                    "--no-defaults",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    str(maria.port),
                    "-u",
                    "nopass",
                    "-e",
                    "SELECT SLEEP(30)",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for _ in range(10)  # max-connections=10 (MariaDB's least)
        ]
        try:
            deadline = time.monotonic() + 15
            while (got := check(f"mysql://nopass@127.0.0.1:{maria.port}"))[0] is DbState.READY:
                assert time.monotonic() < deadline, got
                time.sleep(0.2)
        finally:
            for p in held:
                p.kill()
                p.wait()
        assert got[0] is DbState.TOO_MANY and "Too many connections" in got[1], got


@needs_maria
def test_mariadb_read_only_is_a_standby(tmp_path: Path) -> None:
    server = databases.MariaDB(tmp_path)
    server.extra = ["--read-only"]
    server.start()
    try:
        url = f"mysql://app@127.0.0.1:{server.port}"
        assert check(url, "app-secret") == (DbState.STANDBY, "")
        state, reason = check(url, "app-secret", primary=True)
        assert state is DbState.STANDBY and reason.startswith("db standby:"), reason
    finally:
        server.stop()


def test_something_else_on_the_port_is_not_a_database(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    import threading

    for scheme in ("postgresql", "mysql"):
        t = threading.Thread(target=answer, daemon=True)
        t.start()
        state, reason = check(f"{scheme}://127.0.0.1:{port}")
        t.join(5)
        assert state is DbState.NOT_A_DB and reason.startswith("db not a database:"), reason
    listener.close()


@needs_pg
def test_path_check_by_hand(pg: databases.Postgres, tmp_path: Path) -> None:
    """vmha path-check: the agent's verdicts, exit 0 / 1 / 2, the password from a root-only file."""
    import io

    from vmha import path_check

    pw = tmp_path / "pw"
    pw.write_text("app-secret\n")
    pw.chmod(0o600)

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return path_check.main(list(argv), out, err), out.getvalue(), err.getvalue()

    url = f"postgresql://app@127.0.0.1:{pg.port}/appdb"
    rc, out, _ = run(url, "--password-file", str(pw), "--require-primary")
    assert rc == 0 and out.startswith(f"ok   {url}: ready, server 15."), out
    closed = f"postgresql://127.0.0.1:{databases.free_port()}"
    rc, out, _ = run(url, f"tcp://127.0.0.1:{pg.port}", closed, "--timeout", "2")
    assert rc == 1, out
    lines = out.splitlines()
    assert lines[0] == f"ok   {url}: login needed"
    assert lines[1] == f"ok   tcp://127.0.0.1:{pg.port}"
    assert lines[2].startswith("FAIL postgresql://") and "db closed:" in lines[2]
    pw.chmod(0o644)
    rc, out, err = run(url, "--password-file", str(pw))
    assert rc == 2 and out == "" and "is mode 0644, open to others: chmod 600" in err, err
    assert "app-secret" not in err
    rc, out, err = run("redis://127.0.0.1", url)
    assert rc == 2 and out == "" and "not a tcp://" in err  # nothing runs when one URL is bad
