"""The database checks' I/O: a few messages of PostgreSQL's and of MySQL's wire protocol,
written here on the standard library (no client library: the monitor starts a new process
every few seconds, and these are a handful of messages each), with a hard time limit.

PostgreSQL (protocol 3.0): the startup message, then whatever the server says.  A server
that is starting up, shutting down, in recovery or out of connection slots says so before
any authentication, so without a password the check still tells those apart; a server that
asks for a password it was not given has answered the startup exchange (healthy, unless
``db_require_primary``).  With ``db_password_file`` it logs in (cleartext, MD5 or
SCRAM-SHA-256, the server's choice; the server's SCRAM signature is verified) and runs
``SELECT pg_is_in_recovery()``, which is the trivial query and tells a standby.

MySQL/MariaDB (protocol 10): the server greeting (or the error it sends instead, e.g. too
many connections).  With a user in the URL it logs in (mysql_native_password, or
caching_sha2_password's fast path; MySQL 8's full authentication needs TLS or an RSA key and
is reported as such) and runs ``SELECT @@global.read_only``.

Each check runs in a daemon thread that ``vmha.deadline.run_within`` waits for at most its
timeout, and every socket step has that timeout too: a server that accepts and never
answers fails in time.  Message sizes are bounded, so a hostile server cannot make the agent
allocate much.  The password is only ever in this process's memory and on the wire.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any

from vmha.deadline import run_within
from vmha.verdicts.db_checks import (
    DbOutcome,
    DbState,
    DbTarget,
    ScramClient,
    caching_sha2_password,
    mysql_error,
    mysql_native_password,
    pg_md5_password,
    pg_startup_error,
)

APPLICATION = "vmha-GuestService"
MAX_MESSAGE = 1 << 20
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})


class _Closed(Exception):
    """The server closed the connection mid-exchange."""


class _Bad(Exception):
    """What the server sent is not the protocol."""


def _recv(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise _Closed()
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _cstr(data: bytes, at: int = 0) -> tuple[str, int]:
    end = data.find(b"\0", at)
    if end < 0:
        raise _Bad("unterminated string")
    return data[at:end].decode("utf-8", "replace"), end + 1


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_send(sock: socket.socket, kind: bytes, body: bytes) -> None:
    sock.sendall(kind + struct.pack("!I", len(body) + 4) + body)


def _pg_read(sock: socket.socket) -> tuple[bytes, bytes]:
    head = _recv(sock, 5)
    kind, size = head[:1], struct.unpack("!I", head[1:])[0]
    if not kind.isalpha() or not 4 <= size <= MAX_MESSAGE:
        raise _Bad(f"message {kind!r} of {size} bytes")
    return kind, _recv(sock, size - 4)


def _pg_fields(body: bytes) -> dict[str, str]:
    fields, at = {}, 0
    while at < len(body) and body[at] != 0:
        code = chr(body[at])
        value, at = _cstr(body, at + 1)
        fields[code] = value
    return fields


def _pg_exchange(sock: socket.socket, target: DbTarget, password: str | None) -> DbOutcome:
    params = b"".join(
        k.encode() + b"\0" + v.encode() + b"\0"
        for k, v in (("user", target.user), ("database", target.dbname), ("application_name", APPLICATION))
    )
    body = struct.pack("!I", 196608) + params + b"\0"
    sock.sendall(struct.pack("!I", len(body) + 4) + body)
    version = ""
    scram: ScramClient | None = None
    while True:
        kind, data = _pg_read(sock)
        if kind == b"E":
            f = _pg_fields(data)
            message = f.get("M", "error")
            state = pg_startup_error(f.get("C", ""), message)
            return DbOutcome(state, message[:160], version)
        if kind == b"R":
            code = struct.unpack("!I", data[:4])[0]
            if code == 0:
                continue
            if password is None:
                return DbOutcome(DbState.LOGIN_NEEDED, "", version)
            if code == 3:
                _pg_send(sock, b"p", password.encode() + b"\0")
            elif code == 5:
                _pg_send(sock, b"p", pg_md5_password(target.user, password, data[4:8]).encode() + b"\0")
            elif code == 10:
                mechanisms = data[4:].split(b"\0")
                if b"SCRAM-SHA-256" not in mechanisms:
                    raise _Bad(f"no supported SASL mechanism in {mechanisms!r}")
                scram = ScramClient(password, base64_nonce())
                first = scram.first()
                _pg_send(sock, b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
            elif code == 11 and scram is not None:
                try:
                    _pg_send(sock, b"p", scram.final(data[4:]))
                except ValueError as exc:
                    raise _Bad(str(exc)) from None
            elif code == 12 and scram is not None:
                if not scram.verify(data[4:]):
                    return DbOutcome(DbState.LOGIN_FAILED, "the server's SCRAM signature is wrong", version)
            else:
                raise _Bad(f"authentication request {code}")
            continue
        if kind == b"S":
            name, at = _cstr(data)
            value, _ = _cstr(data, at)
            if name == "server_version":
                version = value
            continue
        if kind in (b"K", b"N"):
            continue
        if kind == b"Z":
            break
        raise _Bad(f"message {kind!r} during startup")
    _pg_send(sock, b"Q", b"SELECT pg_is_in_recovery()\0")
    answer: str | None = None
    while True:
        kind, data = _pg_read(sock)
        if kind == b"D" and len(data) >= 6 and struct.unpack("!h", data[:2])[0] >= 1:
            size = struct.unpack("!i", data[2:6])[0]
            answer = data[6 : 6 + size].decode() if size >= 0 else None
        elif kind == b"E":
            return DbOutcome(DbState.ERROR, _pg_fields(data).get("M", "query failed")[:160], version)
        elif kind == b"Z":
            break
    try:
        _pg_send(sock, b"X", b"")
    except OSError:
        pass
    if answer == "t":
        return DbOutcome(DbState.STANDBY, "in recovery", version)
    return DbOutcome(DbState.READY, "", version)


def base64_nonce() -> str:
    import base64

    return base64.b64encode(os.urandom(18)).decode()


# -- MySQL / MariaDB -------------------------------------------------------------------------

_CLIENT_LONG_PASSWORD = 0x1
_CLIENT_CONNECT_WITH_DB = 0x8
_CLIENT_PROTOCOL_41 = 0x200
_CLIENT_TRANSACTIONS = 0x2000
_CLIENT_SECURE_CONNECTION = 0x8000
_CLIENT_PLUGIN_AUTH = 0x80000


def _my_read(sock: socket.socket) -> tuple[int, bytes]:
    head = _recv(sock, 4)
    size = head[0] | head[1] << 8 | head[2] << 16
    if size > MAX_MESSAGE:
        raise _Bad(f"packet of {size} bytes")
    return head[3], _recv(sock, size)


def _my_send(sock: socket.socket, seq: int, payload: bytes) -> None:
    sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)


def _my_err(data: bytes, version: str) -> DbOutcome:
    code = struct.unpack("<H", data[1:3])[0] if len(data) >= 3 else 0
    text = data[3:]
    if text.startswith(b"#"):
        text = text[6:]  # the SQLSTATE marker
    message = text.decode("utf-8", "replace")[:160]
    return DbOutcome(mysql_error(code, message), message, version)


def _my_auth(plugin: str, password: str, scramble: bytes) -> bytes:
    if plugin == "caching_sha2_password":
        return caching_sha2_password(password, scramble)
    if plugin == "mysql_native_password":
        return mysql_native_password(password, scramble)
    raise _Bad(f"authentication plugin {plugin!r} is not supported")


def _my_exchange(sock: socket.socket, target: DbTarget, password: str | None) -> DbOutcome:
    seq, data = _my_read(sock)
    if data[:1] == b"\xff":
        return _my_err(data, "")
    if data[:1] != b"\x0a":
        raise _Bad("not a MySQL greeting")
    version, at = _cstr(data, 1)
    at += 4  # connection id
    scramble = data[at : at + 8]
    at += 9
    caps = struct.unpack("<H", data[at : at + 2])[0]
    at += 5  # capabilities (low), character set, status
    caps |= struct.unpack("<H", data[at : at + 2])[0] << 16
    at += 2
    extra = max(13, data[at] - 8) if caps & _CLIENT_PLUGIN_AUTH else 13
    at += 11
    scramble += data[at : at + extra].rstrip(b"\0")
    at += extra
    plugin = _cstr(data, at)[0] if caps & _CLIENT_PLUGIN_AUTH and at < len(data) else "mysql_native_password"
    if not target.user:
        return DbOutcome(DbState.READY, "", version)  # greeted: no login asked for
    if not caps & _CLIENT_PROTOCOL_41:
        raise _Bad("the server does not speak protocol 4.1")
    secret = password or ""
    auth = _my_auth(plugin, secret, scramble)
    flags = _CLIENT_LONG_PASSWORD | _CLIENT_PROTOCOL_41 | _CLIENT_TRANSACTIONS | _CLIENT_SECURE_CONNECTION
    flags |= _CLIENT_PLUGIN_AUTH
    if target.dbname:
        flags |= _CLIENT_CONNECT_WITH_DB
    payload = struct.pack("<IIB", flags, MAX_MESSAGE, 45) + b"\0" * 23 + target.user.encode() + b"\0"
    payload += bytes([len(auth)]) + auth
    if target.dbname:
        payload += target.dbname.encode() + b"\0"
    payload += plugin.encode() + b"\0"
    _my_send(sock, seq + 1, payload)
    while True:
        seq, data = _my_read(sock)
        head = data[:1]
        if head == b"\x00":
            break
        if head == b"\xff":
            return _my_err(data, version)
        if head == b"\xfe":  # switch to another plugin, with its own scramble
            plugin, at = _cstr(data, 1)
            _my_send(sock, seq + 1, _my_auth(plugin, secret, data[at:].rstrip(b"\0")))
        elif head == b"\x01" and data[1:2] == b"\x03":
            continue  # caching_sha2_password: fast authentication succeeded; OK follows
        elif head == b"\x01" and data[1:2] == b"\x04":
            return DbOutcome(
                DbState.LOGIN_FAILED,
                "caching_sha2_password asks for full authentication (TLS or RSA), which this check "
                "does not do: log in once with a client, or use mysql_native_password",
                version,
            )
        else:
            raise _Bad(f"login answer {head!r}")
    _my_send(sock, 0, b"\x03SELECT @@global.read_only")
    _seq, data = _my_read(sock)
    if data[:1] == b"\xff":
        return _my_err(data, version)
    eofs, value = 0, ""
    while eofs < 2:
        _seq, data = _my_read(sock)
        if data[:1] == b"\xfe" and len(data) < 9:
            eofs += 1
        elif data[:1] == b"\xff":
            return _my_err(data, version)
        elif eofs == 1 and data:
            size = data[0]
            value = data[1 : 1 + size].decode() if size < 251 else ""
    try:
        _my_send(sock, 0, b"\x01")
    except OSError:
        pass
    if value == "1":
        return DbOutcome(DbState.STANDBY, "read_only is on", version)
    return DbOutcome(DbState.READY, "", version)


# -- both ------------------------------------------------------------------------------------


def _check(target: DbTarget, password: str | None, timeout_s: float) -> DbOutcome:
    exchange = _pg_exchange if target.kind == "postgresql" else _my_exchange
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout_s) as sock:
            return exchange(sock, target, password)
    except socket.gaierror as exc:
        return DbOutcome(DbState.ERROR, f"cannot resolve {target.host}: {exc.strerror or exc}")
    except ConnectionRefusedError:
        return DbOutcome(DbState.REFUSED)
    except (TimeoutError, socket.timeout):  # socket.timeout is not TimeoutError before 3.10
        return DbOutcome(DbState.TIMEOUT)
    except _Closed:
        return DbOutcome(DbState.NOT_A_DB, "the server closed the connection mid-exchange")
    except (_Bad, struct.error, IndexError, UnicodeDecodeError) as exc:
        name = "PostgreSQL" if target.kind == "postgresql" else "MySQL"
        return DbOutcome(DbState.NOT_A_DB, f"not a {name} answer ({exc or type(exc).__name__})"[:160])
    except OSError as exc:
        if exc.errno in _UNREACHABLE:
            return DbOutcome(DbState.UNREACHABLE, str(exc.strerror or exc))
        return DbOutcome(DbState.ERROR, str(exc.strerror or exc))


def db_check(target: DbTarget, password: str | None, timeout_s: float) -> DbOutcome:
    """What ``target`` answers within ``timeout_s`` in all; never raises.  ``password``
    None: no login is tried (a PostgreSQL that asks for one is LOGIN_NEEDED)."""
    try:
        done, value = run_within(_check, timeout_s, target, password, timeout_s, name="db-check")
    except ValueError as exc:  # e.g. a host name IDNA cannot encode
        return DbOutcome(DbState.ERROR, str(exc))
    if not done or value is None:
        return DbOutcome(DbState.TIMEOUT)
    return value


def read_password_file(path: str) -> str:
    """The first line of ``path``, which must be a regular file of root's that no one else
    can read or write.  Raises ValueError with the reason (never the content)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"db_password_file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"db_password_file {path} is not a regular file")
        if st.st_uid != 0 and st.st_uid != os.geteuid():
            raise ValueError(f"db_password_file is not root's: chown root {path}")
        if st.st_mode & 0o077:
            mode = f"{st.st_mode & 0o777:04o}"
            raise ValueError(f"db_password_file is mode {mode}, open to others: chmod 600 {path}")
        if st.st_size > 4096:
            raise ValueError(f"db_password_file {path} is larger than 4 KiB: not a password file")
        data = os.read(fd, 4097)
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    return text.split("\n", 1)[0].rstrip("\r")


def describe(outcome: Any) -> str:
    """For logs: the state and the server version, never credentials."""
    return f"{outcome.state.value}{' (server ' + outcome.version + ')' if outcome.version else ''}"
