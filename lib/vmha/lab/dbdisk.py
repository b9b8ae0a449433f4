"""The lab's database disk: Debian's PostgreSQL 15 on an ext4 filesystem for a guest's ``vdb``.

Made here with ``mkfs.ext4 -d`` from

- the server binary (this machine's ``postgresql-15``), its modules and share files, and the
  shared libraries it needs (the guest runs it with ``LD_LIBRARY_PATH`` on the disk);
- a data directory made by ``initdb`` on this machine (owned by the machine's postgres user,
  whose numbers the guest adopts), with a role ``app`` (SCRAM-SHA-256, its password in a
  root-only file) owning a database ``lab`` and its table ``acked``; durability left as it
  comes (``fsync``, ``synchronous_commit``, ``full_page_writes`` on, written down to be sure).

The disk is built once per build number and copied for each database VM onto the shared
storage (vmha.lab.database).  In the guest, ``GUEST_SCRIPT`` (``/sbin/vmha-pg`` in the
initramfs, vmha.lab.image) is what a service manager would be: ``start`` mounts the disk and
starts the server, ``stop`` asks it for a fast shutdown, ``status`` answers in LSB codes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence

from vmha.ocf.runner import CommandRunner

PG_MAJOR = "15"
PG_LIB = f"/usr/lib/postgresql/{PG_MAJOR}"
PG_SHARE = f"/usr/share/postgresql/{PG_MAJOR}"
PG_PORT = 5432
DB_NAME = "lab"
DB_USER = "app"
TABLE = "acked"
DISK_MIB = 256
MEMORY_MIB = 256
# bump when the disk's content changes: a cached template of another build is rebuilt
DB_BUILD = "2"
TEMPLATE = "db-template.img"
PASSWORD_FILE = "db-password"  # noqa: S105 - the name of the file, not a password
GUEST_MOUNT = "/db"
GUEST_DEVICE = "/dev/vdb"

# The guest's "service manager" for PostgreSQL (busybox sh).  Exit codes of status are LSB's:
# 0 running, 1 dead with a pid file left, 3 stopped.  A pid file from an earlier boot may
# name a process that is something else now (guest PIDs repeat from boot to boot), so a pid
# counts only when that process is a postgres.
GUEST_SCRIPT = f"""#!/bin/sh
MNT={GUEST_MOUNT}
PGDATA=$MNT/data
BIN=$MNT{PG_LIB}/bin
pid() {{ [ -f $PGDATA/postmaster.pid ] && head -n 1 $PGDATA/postmaster.pid; }}
alive() {{ p=$(pid) && [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = postgres ]; }}
prepare() {{
  mkdir -p $MNT
  # ext4 is a module of Debian's kernel (in the initramfs, vmha.lab.image.MODULES)
  grep -q ext4 /proc/filesystems || for m in crc16 mbcache jbd2 crc32c_generic ext4; do
    insmod /lib/modules/$m.ko 2>/dev/null
  done
  grep -q " $MNT " /proc/mounts || mount -t ext4 -o noatime {GUEST_DEVICE} $MNT || exit 1
  for d in {PG_LIB} {PG_SHARE} /usr/share/zoneinfo; do
    [ -e $d ] || {{ mkdir -p "$(dirname $d)" && ln -s $MNT$d $d; }}
  done
  if ! grep -q '^postgres:' /etc/passwd 2>/dev/null; then
    u=$(stat -c %u $PGDATA); g=$(stat -c %g $PGDATA)
    printf 'root:x:0:0::/:/bin/sh\\npostgres:x:%s:%s::%s:/bin/sh\\n' $u $g $MNT > /etc/passwd
    printf 'root:x:0:\\npostgres:x:%s:\\n' $g > /etc/group
  fi
  mkdir -p /dev/shm /run/postgresql
  grep -q ' /dev/shm ' /proc/mounts || mount -t tmpfs -o mode=1777 shm /dev/shm
  chown postgres:postgres /run/postgresql
}}
case "$1" in
start)
  alive && exit 0
  prepare
  # backends of a postmaster that died may still hold its shared memory: PostgreSQL's own
  # guard (the pid file's key) would refuse a new server while they do; they go first
  if pidof postgres >/dev/null; then killall -9 postgres; sleep 1; fi
  pidof postgres >/dev/null && {{ echo "postgres processes that will not die"; exit 1; }}
  rm -f $PGDATA/postmaster.pid
  su -s /bin/sh postgres -c "LD_LIBRARY_PATH=$MNT/lib exec $BIN/postgres -D $PGDATA" \\
    </dev/null >/dev/console 2>&1 &
  child=$!
  i=0
  while [ $i -lt 150 ]; do
    alive && exit 0
    kill -0 $child 2>/dev/null || {{ echo "postgres exited at start: see the serial console"; exit 1; }}
    sleep 0.2; i=$((i+1))
  done
  echo "postgres wrote no pid file in 30 s"; exit 1;;
stop)
  if ! alive; then
    # the postmaster is gone, its backends may not be: stopped means none is left
    pidof postgres >/dev/null && killall -9 postgres
    exit 0
  fi
  p=$(pid)
  killall -CONT postgres 2>/dev/null
  kill -INT $p
  i=0
  while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
  if kill -0 $p 2>/dev/null; then kill -QUIT $p; sleep 1; killall -9 postgres 2>/dev/null; fi
  exit 0;;
status)
  [ -f $PGDATA/postmaster.pid ] || exit 3
  alive && exit 0
  exit 1;;
*) echo "usage: $0 start|stop|status"; exit 2;;
esac
"""
GUEST_SCRIPT_PATH = "/sbin/vmha-pg"

SERVER_SETTINGS = {
    "listen_addresses": "'*'",
    "port": str(PG_PORT),
    "max_connections": "20",
    "shared_buffers": "16MB",
    "dynamic_shared_memory_type": "posix",
    "unix_socket_directories": "'/run/postgresql'",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "jit": "off",
    "huge_pages": "off",
    # what a committed row rests on; all three are the defaults, written down to be sure
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_wal_size": "64MB",
    "min_wal_size": "32MB",
    "log_line_prefix": "'postgres[%p] '",
}
HBA = "local all all trust\nhost all all 0.0.0.0/0 scram-sha-256\n"


class DatabaseError(Exception):
    pass


def password_file(image_dir: str) -> str:
    return os.path.join(image_dir, PASSWORD_FILE)


def read_password(image_dir: str) -> str:
    with open(password_file(image_dir)) as f:
        return f.read().strip()


def ensure_template(image_dir: str, runner: CommandRunner, log: Callable[[str], None] = lambda _m: None) -> str:
    """The cached database disk (and its password file), built first if missing."""
    path = os.path.join(image_dir, TEMPLATE)
    stamp = path + ".build"
    try:
        server = os.stat(f"{PG_LIB}/bin/postgres")
    except OSError:
        raise DatabaseError(f"PostgreSQL {PG_MAJOR} is not installed (apt-get install postgresql-{PG_MAJOR})") from None
    # this build, of this very server binary (an upgraded package makes a new disk)
    build = f"{DB_BUILD} {server.st_size} {server.st_mtime_ns}"
    try:
        with open(stamp) as f:
            if f.read().strip() == build and os.path.exists(password_file(image_dir)) and os.path.exists(path):
                return path
    except OSError:
        pass
    log(f"building the database disk in {path}")
    os.makedirs(image_dir, mode=0o755, exist_ok=True)
    # no stamp while the disk and its password are being replaced: an interrupted build is
    # built again, never taken for a disk whose role has the password on file
    with contextlib.suppress(FileNotFoundError):
        os.unlink(stamp)
    password = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="vmha-db-") as work:
        os.chmod(work, 0o755)  # noqa: S103 - initdb runs as postgres and must reach it
        tree = os.path.join(work, "tree")
        _copy_server(runner, tree)
        _make_data(runner, tree, password)
        tmp = path + ".tmp"
        _mkfs(runner, tree, tmp)
    os.replace(tmp, path)
    _write_private(password_file(image_dir), password + "\n")
    _write_private(stamp, build + "\n")
    return path


def _write_private(path: str, text: str) -> None:
    """Root's alone (0600), written whole or not at all."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _copy_server(runner: CommandRunner, tree: str) -> None:
    from vmha.lab.image import shared_libraries

    server = f"{PG_LIB}/bin/postgres"
    bindir = os.path.join(tree, PG_LIB.lstrip("/"), "bin")
    os.makedirs(bindir)
    shutil.copy2(server, bindir)
    # the server's loadable modules (plpgsql, ...), not the JIT's bitcode
    shutil.copytree(f"{PG_LIB}/lib", os.path.join(tree, PG_LIB.lstrip("/"), "lib"), ignore=_no_bitcode)
    shutil.copytree(PG_SHARE, os.path.join(tree, PG_SHARE.lstrip("/")))
    zoneinfo = os.path.join(tree, "usr/share/zoneinfo")
    os.makedirs(os.path.join(zoneinfo, "Etc"))
    for name in ("UTC", "Etc/UTC"):
        shutil.copyfile(os.path.realpath(f"/usr/share/zoneinfo/{name}"), os.path.join(zoneinfo, name))
    libdir = os.path.join(tree, "lib")
    os.makedirs(libdir)
    for lib in shared_libraries(runner, server):
        shutil.copyfile(os.path.realpath(lib), os.path.join(libdir, os.path.basename(lib)))


def _no_bitcode(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "bitcode"]


def _as_postgres(runner: CommandRunner, argv: Sequence[str], stdin: str | None = None) -> str:
    done = runner.run(["runuser", "-u", "postgres", "--", *argv], timeout=120, stdin=stdin)
    if not done.ok:
        # stderr of initdb/postgres --single; the password is only ever on their stdin
        raise DatabaseError(f"{os.path.basename(argv[0])} failed: {done.stderr.strip()[-400:]}")
    return done.stdout


def _make_data(runner: CommandRunner, tree: str, password: str) -> None:
    data = os.path.join(tree, "data")
    os.makedirs(data, mode=0o700)
    shutil.chown(data, "postgres", "postgres")
    initdb = [f"{PG_LIB}/bin/initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C"]
    _as_postgres(runner, [*initdb, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
    # a failed statement is not echoed to stderr (the role's carries its password)
    single = [f"{PG_LIB}/bin/postgres", "--single", "-D", data, "-c", "jit=off", "-c", "log_min_error_statement=panic"]
    _as_postgres(
        runner,
        [*single, "postgres"],
        stdin=f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{password}';\nCREATE DATABASE {DB_NAME} OWNER {DB_USER};\n",
    )
    _as_postgres(
        runner,
        [*single, DB_NAME],
        stdin=f"SET ROLE {DB_USER};\nCREATE TABLE {TABLE} (n bigint PRIMARY KEY, at timestamptz DEFAULT now());\n",
    )
    with open(os.path.join(data, "postgresql.auto.conf"), "a") as f:
        f.writelines(f"{k} = {v}\n" for k, v in SERVER_SETTINGS.items())
    with open(os.path.join(data, "pg_hba.conf"), "w") as f:
        f.write(HBA)


def _mkfs(runner: CommandRunner, tree: str, image_path: str) -> None:
    fd = os.open(image_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, DISK_MIB * 1024 * 1024)
    finally:
        os.close(fd)
    # a journal (the default): the guest's filesystem must come back from a power cut
    argv = ["mkfs.ext4", "-q", "-F", "-L", "vmha-db", "-m", "0", "-E", "root_owner=0:0", "-d", tree, image_path]
    done = runner.run(argv, timeout=120)
    if not done.ok:
        raise DatabaseError(f"mkfs.ext4 failed: {done.stderr.strip()}")


def copy_disk(template: str, image_path: str, owner: tuple[int, int]) -> None:
    """The VM's own copy of the database disk, owned by QEMU's user (0600), as a data disk
    carries its own DAC label (vmha.lab.storage.create_disk)."""
    tmp = image_path + ".tmp"
    with open(template, "rb") as src:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            size = os.fstat(src.fileno()).st_size
            os.ftruncate(fd, size)
            chunk = 1 << 20
            offset = 0
            while offset < size:
                block = src.read(chunk)
                if block.strip(b"\0"):  # keep the copy sparse
                    os.pwrite(fd, block, offset)
                offset += len(block)
            os.fsync(fd)
            os.fchown(fd, *owner)
        finally:
            os.close(fd)
    os.replace(tmp, image_path)
