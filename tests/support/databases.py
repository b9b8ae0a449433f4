"""Real database servers for the db_check tests: a private PostgreSQL 15 (Debian's
postgresql-15) and a private MariaDB (mariadb-server-core), each in a temporary directory, on
127.0.0.1 and a free port, never the machine's own instance or configuration.

PostgreSQL's roles: ``postgres`` (trust), ``app`` (SCRAM-SHA-256, password ``app-secret``),
``md5user`` (MD5, ``md5-secret``), database ``appdb``.  A standby (``pg_basebackup -R``) is
one call away.  MariaDB's users: ``app``@127.0.0.1 (mysql_native_password, ``app-secret``),
``nopass`` (no password)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _as_postgres(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, user="postgres", check=True, capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload,no-any-return]


class Postgres:
    """``root``: a directory of its own, created here under /tmp (pytest's own temporary
    directories are root's 0700, which the postgres user cannot enter)."""

    def __init__(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="vmha-test-pg-"))
        self.root = root
        self.data = root / "data"
        self.sock = root / "sock"
        self.port = free_port()

    def initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        shutil.chown(self.root, "postgres")
        shutil.chown(self.sock, "postgres")
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"])
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all md5user 127.0.0.1/32 md5\n"
            "host replication postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def start(self, *extra: str) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} -c fsync=off " + " ".join(extra)
        log = str(self.root / "log")
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-t", "60", "-l", log, "start"])

    def stop(self, *, remove: bool = True) -> None:
        subprocess.run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            user="postgres",
            capture_output=True,
            timeout=60,
            check=False,
        )
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, statement: str) -> str:
        out = _as_postgres(
            [str(PG_BIN / "psql"), "-h", str(self.sock), "-p", str(self.port), "-U", "postgres", "-Atqc", statement]
        )
        return out.stdout.strip()

    def setup_roles(self) -> None:
        self.sql("CREATE ROLE app LOGIN PASSWORD 'app-secret'")
        self.sql("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-secret'")
        self.sql("CREATE DATABASE appdb OWNER app")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def standby(self) -> Postgres:
        """A hot standby of this server (streaming, in recovery), started."""
        other = Postgres()
        other.sock.mkdir(exist_ok=True)
        shutil.chown(other.root, "postgres")
        shutil.chown(other.sock, "postgres")
        _as_postgres(
            [str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D",
             str(other.data), "-R", "-X", "stream", "--no-sync"]
        )  # fmt: skip
        other.start()
        return other


class MariaDB:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(INSTALL_DB), "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        init = self.root / "init.sql"
        init.write_text(
            "CREATE USER 'app'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret');\n"
            "GRANT ALL ON *.* TO 'app'@'127.0.0.1';\n"
            "CREATE USER 'nopass'@'127.0.0.1';\n"
            "CREATE DATABASE appdb;\n"
        )
        self.log = open(self.root / "log", "wb")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(
            [str(MARIADBD), "--no-defaults", f"--datadir={self.data}", "--user=root", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.root / 'sock'}", f"--pid-file={self.root / 'pid'}",
             f"--init-file={init}", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0",
             "--max-connections=10", *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if not wait_port(self.port, 60):
            self.stop()
            raise RuntimeError(f"mariadbd did not listen: {(self.root / 'log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()


def have_postgres() -> bool:
    return (PG_BIN / "postgres").exists() and os.geteuid() == 0


def have_mariadb() -> bool:
    return MARIADBD.exists() and INSTALL_DB.exists()
