"""A unix socket that accepts every connection, reads nothing back, and never answers: what a
hung libvirtd looks like to a client (the connection succeeds, the first RPC never returns)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def silent_socket(directory: str) -> Iterator[str]:
    """Yields the socket's path; every connection is held open until the context ends."""
    path = os.path.join(directory, "libvirt-sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)  # keep it open, answer nothing

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()
