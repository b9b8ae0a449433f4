"""db_check's pure parts (vmha.verdicts.db_checks): the URL, the verdict's reasons, SCRAM
against RFC 7677's vector (MD5 and MySQL's schemes are proven by real logins); and the wire
client (vmha.guest_service.db_client) against stand-in servers for what a real one cannot be
made to say on demand (starting up, an oversized message, a server that trickles).
tests/integration/test_db_check.py has the real PostgreSQL and MariaDB."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from vmha.guest_service.db_client import db_check
from vmha.verdicts.client_checks import CheckConfigError
from vmha.verdicts.db_checks import (
    DbOutcome,
    DbState,
    DbTarget,
    ScramClient,
    judge_db,
    mysql_error,
    parse_db,
    pg_startup_error,
)


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("postgresql://10.0.0.5", DbTarget("postgresql", "10.0.0.5", 5432, "postgres", "postgres")),
        ("postgres://app@db.example:6432/shop", DbTarget("postgresql", "db.example", 6432, "app", "shop")),
        ("postgresql://app@[fd00::5]/app", DbTarget("postgresql", "fd00::5", 5432, "app", "app")),
        ("mysql://10.0.0.5", DbTarget("mysql", "10.0.0.5", 3306, "", "")),
        ("mariadb://mon@10.0.0.5:3307/shop", DbTarget("mysql", "10.0.0.5", 3307, "mon", "shop")),
    ],
)
def test_parse(url: str, want: DbTarget) -> None:
    assert parse_db(url) == want


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://10.0.0.5", "not a postgresql:// or mysql:// URL"),
        ("10.0.0.5:5432", "not a postgresql:// or mysql:// URL"),
        ("postgresql://app:secret@10.0.0.5/app", "password in the URL is refused"),
        ("postgresql://10.0.0.5:0", "not a number from 1 to 65535"),
        ("postgresql://10.0.0.5:65536", "not a number from 1 to 65535"),
        ("postgresql://10.0.0.5/app?sslmode=require", "URL parameters"),
        ("postgresql://a;b@10.0.0.5", "not a plain user name"),
        ("postgresql://10.0.0.5/a b", "whitespace"),
        ("mysql:///app", "no host"),
    ],
)
def test_parse_refuses(url: str, why: str) -> None:
    with pytest.raises(CheckConfigError, match="db_check: ") as info:
        parse_db(url)
    assert why in str(info.value)
    assert "secret" not in str(info.value)


PG = parse_db("postgresql://app@10.0.0.5/app")


@pytest.mark.parametrize(
    ("outcome", "primary", "reason"),
    [
        (DbOutcome(DbState.READY), True, ""),
        (DbOutcome(DbState.LOGIN_NEEDED), False, ""),
        (DbOutcome(DbState.STANDBY), False, ""),
        (DbOutcome(DbState.STANDBY), True, "db standby: postgresql://app@10.0.0.5:5432/app is read-only, in recovery"),
        (
            DbOutcome(DbState.STARTING, "the database system is starting up"),
            False,
            "db starting up: postgresql://app@10.0.0.5:5432/app: the database system is starting up",
        ),
        (DbOutcome(DbState.TIMEOUT), False, "db timeout: postgresql://app@10.0.0.5:5432/app did not answer within 5s"),
        (DbOutcome(DbState.REFUSED), False, "db closed: postgresql://app@10.0.0.5:5432/app refused the connection"),
    ],
)
def test_judge(outcome: DbOutcome, primary: bool, reason: str) -> None:
    got = judge_db(PG, outcome, require_primary=primary, timeout_s=5.0)
    assert got.ok is (reason == "")
    assert got.reason.startswith(reason)


def test_startup_errors_are_told_apart() -> None:
    assert pg_startup_error("57P03", "the database system is starting up") is DbState.STARTING
    assert pg_startup_error("57P03", "the database system is shutting down") is DbState.SHUTTING_DOWN
    assert pg_startup_error("57P03", "the database system is not accepting connections") is DbState.RECOVERY
    assert pg_startup_error("53300", "sorry, too many clients already") is DbState.TOO_MANY
    assert pg_startup_error("28P01", "password authentication failed") is DbState.LOGIN_FAILED
    assert pg_startup_error("3D000", 'database "x" does not exist') is DbState.ERROR
    assert mysql_error(1040, "Too many connections") is DbState.TOO_MANY
    assert mysql_error(1045, "Access denied") is DbState.LOGIN_FAILED


def test_scram_sha_256_against_rfc_7677() -> None:
    c = ScramClient("pencil", "rOprNGfwEbeRWgbNEkqO", user="user")
    assert c.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = c.final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert final == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    assert not c.verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(ValueError, match="not a valid SCRAM"):
        ScramClient("pencil", "abc").final(b"r=xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")  # not our nonce


@pytest.fixture
def server() -> Iterator[tuple[int, list[bytes]]]:
    """A one-shot stand-in: accepts, reads the client's first message, answers the bytes
    queued in the list (an int there: a pause of that many seconds), closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    script: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(4096)
            for part in script:
                if isinstance(part, (int, float)):
                    time.sleep(part)
                else:
                    try:
                        conn.sendall(part)
                    except OSError:
                        return
            time.sleep(0.2)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield listener.getsockname()[1], script
    listener.close()


def _pg_error(code: str, message: str) -> bytes:
    body = b"SFATAL\0" + b"C" + code.encode() + b"\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def test_a_server_starting_up_says_so_before_any_login(server: tuple[int, list[bytes]]) -> None:
    port, script = server
    script.append(_pg_error("57P03", "the database system is starting up"))
    got = db_check(parse_db(f"postgresql://127.0.0.1:{port}"), None, 3.0)
    assert got == DbOutcome(DbState.STARTING, "the database system is starting up", "")


def test_an_oversized_message_is_not_a_database(server: tuple[int, list[bytes]]) -> None:
    port, script = server
    script.append(b"R" + struct.pack("!I", 1 << 30))
    got = db_check(parse_db(f"postgresql://127.0.0.1:{port}"), None, 3.0)
    assert got.state is DbState.NOT_A_DB


def test_a_trickling_server_is_cut_at_the_timeout(server: tuple[int, list[bytes]]) -> None:
    port, script = server
    script.extend([b"\x4a\x00", 0.6, b"\x00", 0.6, b"\x00", 0.6, b"\x0a", 0.6, b"5", 0.6])  # a greeting, slowly
    t0 = time.monotonic()
    got = db_check(parse_db(f"mysql://127.0.0.1:{port}"), None, 1.5)
    assert got.state is DbState.TIMEOUT and time.monotonic() - t0 < 2.5
