"""What the daemon's two Unix sockets (gRPC and the peer handshake) share: their private
folder, and files that are private from the first instant."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from enclave_contract.limits import MAX_SOCKET_PATH
from enclaved.errors import ConfigError

log = logging.getLogger("enclaved")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Files created meanwhile (a socket's, by bind) get ``~mask`` from the first instant."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def prepare_socket_dir(socket_path: Path) -> None:
    """Create the socket's folder 0700; refuse a path that is too long or not a socket."""
    if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes; choose a shorter --socket")
    folder = socket_path.parent
    if not folder.exists():
        with umask(0o077):
            folder.mkdir(parents=True, mode=0o700)
    elif folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o077 and not folder.stat().st_mode & stat.S_ISVTX:
        log.warning("socket folder %s is open to other users; the socket itself is 0600", folder)
    if socket_path.exists() and not stat.S_ISSOCK(socket_path.stat().st_mode):
        raise ConfigError(f"{socket_path} exists and is not a socket; remove it or choose another --socket")
