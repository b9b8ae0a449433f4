"""Database checks on the client path (``db_check=URL``), judged without I/O.

``postgresql://[user@]host[:port][/dbname]`` and ``mysql://[user@]host[:port][/dbname]``
(MySQL and MariaDB; ``postgres://`` and ``mariadb://`` are the same).  The I/O, the few
messages of each wire protocol, lives in ``vmha.guest_service.db_client``; here are the URL
parser (validate-all refuses a bad value before anything runs), the password computations
each protocol asks for (pure functions of their inputs), and the verdict, whose reason
starts with what failed, as the other client-path checks' do (pacemaker-execd keeps 128
bytes)::

    db starting up: postgresql://postgres@10.0.0.5:5432/app: the database system is starting up
    db standby: postgresql://postgres@10.0.0.5:5432/app is in recovery (db_require_primary)
    db too many connections: mysql://10.0.0.5:3306: Too many connections
    db login failed: postgresql://app@10.0.0.5:5432/app: password authentication failed ...
    db timeout: mysql://10.0.0.5:3306 did not answer within 5s

A password never appears in the URL (it would be in the CIB and in every log line): it
comes from ``db_password_file``, a file only root can read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from enum import Enum
from typing import NamedTuple

from vmha.verdicts.client_checks import CheckConfigError, CheckResult, parse_host_port

SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
DEFAULT_PORT = {"postgresql": 5432, "mysql": 3306}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}\Z")


class DbTarget(NamedTuple):
    kind: str  # postgresql or mysql
    host: str
    port: int
    user: str  # "" for mysql without a login: the server greeting only
    dbname: str

    def describe(self) -> str:
        who = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        db = f"/{self.dbname}" if self.dbname else ""
        return f"{self.kind}://{who}{host}:{self.port}{db}"


def parse_db(text: str, param: str = "db_check") -> DbTarget:
    """A database URL. Raises CheckConfigError naming ``param``."""
    url = text.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise CheckConfigError(f"{param}: the URL contains whitespace or control characters")
    scheme, sep, rest = url.partition("://")
    kind = SCHEMES.get(scheme.lower()) if sep else None
    if kind is None:
        raise CheckConfigError(f"{param}: {url!r} is not a postgresql:// or mysql:// URL")
    if "?" in rest or "#" in rest:
        raise CheckConfigError(f"{param}: URL parameters (?...) are not supported")
    authority, slash, dbname = rest.partition("/")
    user = ""
    if "@" in authority:
        user, _, authority = authority.rpartition("@")
        if ":" in user:
            raise CheckConfigError(
                f"{param}: a password in the URL is refused (it would be in the CIB and the logs): use db_password_file"
            )
        if not _NAME.match(user):
            raise CheckConfigError(f"{param}: user {user!r} is not a plain user name")
    if slash and dbname and not _NAME.match(dbname):
        raise CheckConfigError(f"{param}: database {dbname!r} is not a plain database name")
    host, port = parse_host_port(authority, param, DEFAULT_PORT[kind])
    if kind == "postgresql":
        user = user or "postgres"  # a PostgreSQL startup always names a role
        dbname = dbname or user
    return DbTarget(kind, host, port, user, dbname)


class DbState(Enum):
    READY = "ready"  # logged in (or greeted, without credentials) and answering
    LOGIN_NEEDED = "login needed"  # answered the startup exchange, asks for a password we lack
    STANDBY = "standby"  # logged in, read-only (in recovery / read_only)
    STARTING = "starting up"
    SHUTTING_DOWN = "shutting down"
    RECOVERY = "in recovery"  # not accepting connections yet (or hot standby off)
    TOO_MANY = "too many connections"
    LOGIN_FAILED = "login failed"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    NOT_A_DB = "not a database"  # something else answers on the port
    ERROR = "error"


class DbOutcome(NamedTuple):
    state: DbState
    detail: str = ""  # the server's own message, or the socket error
    version: str = ""  # server_version / the greeting's version, when seen


def judge_db(target: DbTarget, outcome: DbOutcome, *, require_primary: bool, timeout_s: float) -> CheckResult:
    where = target.describe()
    said = f": {outcome.detail}" if outcome.detail else ""
    state = outcome.state
    if state is DbState.READY:
        return CheckResult(True)
    if state is DbState.LOGIN_NEEDED:
        if not require_primary:
            return CheckResult(True)
        return CheckResult(
            False, f"db login needed: {where} asks for a password; db_require_primary needs db_password_file"
        )
    if state is DbState.STANDBY:
        if not require_primary:
            return CheckResult(True)
        return CheckResult(False, f"db standby: {where} is read-only, in recovery (db_require_primary)")
    if state is DbState.TIMEOUT:
        return CheckResult(False, f"db timeout: {where} did not answer within {timeout_s:g}s{said}")
    if state is DbState.REFUSED:
        return CheckResult(False, f"db closed: {where} refused the connection")
    return CheckResult(False, f"db {state.value}: {where}{said}")


# -- PostgreSQL: the SQLSTATEs a startup can be refused with ------------------------------


def pg_startup_error(sqlstate: str, message: str) -> DbState:
    """The state an ErrorResponse during the startup exchange tells."""
    if sqlstate == "57P03":  # cannot_connect_now: the message says why (it may be translated)
        low = message.lower()
        if "starting up" in low:
            return DbState.STARTING
        if "shutting down" in low:
            return DbState.SHUTTING_DOWN
        return DbState.RECOVERY
    if sqlstate in ("57P01", "57P02"):  # admin_shutdown, crash_shutdown
        return DbState.SHUTTING_DOWN
    if sqlstate == "53300":
        return DbState.TOO_MANY
    if sqlstate.startswith("28"):  # invalid_authorization_specification, invalid_password
        return DbState.LOGIN_FAILED
    return DbState.ERROR


def pg_md5_password(user: str, password: str, salt: bytes) -> str:
    """AuthenticationMD5Password's answer: 'md5' + md5(md5(password + user) + salt)."""
    inner = hashlib.md5((password + user).encode(), usedforsecurity=False).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt, usedforsecurity=False).hexdigest()


class ScramClient:
    """SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it, without channel binding."""

    def __init__(self, password: str, nonce: str, user: str = "") -> None:
        self.password = password
        self.nonce = nonce
        # PostgreSQL takes the user from the startup message: it sends (and expects) "n="
        self.first_bare = f"n={user},r={nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return ("n,," + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        """The client-final message. Raises ValueError on a server-first that is not valid."""
        text = server_first.decode("ascii")
        attrs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        nonce, salt, rounds = attrs.get("r", ""), base64.b64decode(attrs.get("s", "")), int(attrs.get("i", "0"))
        if not nonce.startswith(self.nonce) or len(nonce) <= len(self.nonce) or not salt or not 1 <= rounds <= 10**7:
            raise ValueError("not a valid SCRAM server-first message")
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, rounds)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(stored, auth, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_signature = hmac.digest(hmac.digest(salted, b"Server Key", "sha256"), auth, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        text = server_final.decode("ascii", "replace")
        return text.startswith("v=") and hmac.compare_digest(base64.b64decode(text[2:]), self.server_signature)


# -- MySQL / MariaDB: the two password schemes of a login -----------------------------------


def mysql_native_password(password: str, scramble: bytes) -> bytes:
    """SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for no password."""
    if not password:
        return b""
    # the protocol's own scheme, not a choice of ours (hence usedforsecurity=False)
    once = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    twice = hashlib.sha1(once, usedforsecurity=False).digest()
    mixed = hashlib.sha1(scramble[:20] + twice, usedforsecurity=False).digest()
    return bytes(a ^ b for a, b in zip(once, mixed))


def caching_sha2_password(password: str, scramble: bytes) -> bytes:
    """SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble): MySQL 8's fast path."""
    if not password:
        return b""
    once = hashlib.sha256(password.encode()).digest()
    twice = hashlib.sha256(once).digest()
    mixed = hashlib.sha256(twice + scramble[:20]).digest()
    return bytes(a ^ b for a, b in zip(once, mixed))


def mysql_error(code: int, message: str) -> DbState:
    """The state a MySQL/MariaDB ERR packet during connect or login tells."""
    if code == 1040:  # ER_CON_COUNT_ERROR
        return DbState.TOO_MANY
    if code in (1045, 1044, 1130, 1698):  # access denied, to db, host not allowed, no socket auth
        return DbState.LOGIN_FAILED
    if code in (1053, 1077, 1927):  # server shutdown in progress, normal shutdown, connection killed
        return DbState.SHUTTING_DOWN
    return DbState.ERROR
