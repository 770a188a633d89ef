"""What the daemon's two Unix sockets (gRPC and the peer handshake) share: their private
folder, and files that are private from the first instant."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from enclave_contract.limits import MAX_SOCKET_PATH
from enclaved.errors import ConfigError

log = logging.getLogger("enclaved")


def is_private(socket_path: Path) -> bool:
    """Whether only this user (and root) can connect to ``socket_path``: the socket is ours
    and nobody else may write it (connect needs write permission), or its folder is ours and
    nobody else may enter it. Checked on every call without a peer token."""
    uid = os.getuid()
    try:
        folder = socket_path.parent.stat()
        if folder.st_uid == uid and not folder.st_mode & 0o011:
            return True
        sock = socket_path.lstat()
    except OSError:
        return False
    return sock.st_uid == uid and not sock.st_mode & 0o022


def inode(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path`` itself, None if it is gone: tells our socket from another."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


async def first_lost(bound: dict[Path, tuple[int, int] | None], interval: float) -> Path:
    """Wait until one of the sockets in ``bound`` (path → its inode when bound) is removed or
    replaced, and return its path. A daemon whose socket is gone is unreachable but would
    hold its lock forever: it should stop, so that a new one can listen there."""
    while True:
        await asyncio.sleep(interval)
        for path, bound_inode in bound.items():
            if inode(path) != bound_inode:
                return path


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Files created meanwhile (a socket's, by bind) get ``~mask`` from the first instant."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def prepare_socket_dir(socket_path: Path) -> None:
    """Create the socket's folder 0700; refuse a path that is too long or not a socket, and
    a folder that another user owns or that group or others can write (they could rename the
    socket and bind their own in its place)."""
    if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes; choose a shorter --socket")
    folder = socket_path.parent
    if not folder.exists():
        with umask(0o077):
            folder.mkdir(parents=True, mode=0o700)
    st = folder.stat()
    if st.st_uid not in (os.getuid(), 0):
        raise ConfigError(f"socket folder {folder} belongs to uid {st.st_uid}, not to this user; choose a --socket in a folder of your own")
    if st.st_mode & 0o022:
        raise ConfigError(
            f"socket folder {folder} can be written by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 700 {folder}, or choose another --socket"
        )
    if st.st_mode & 0o077:
        log.warning("socket folder %s can be entered by other users (mode %04o); the sockets are 0600", folder, stat.S_IMODE(st.st_mode))
    if socket_path.exists() and not stat.S_ISSOCK(socket_path.stat().st_mode):
        raise ConfigError(f"{socket_path} exists and is not a socket; remove it or choose another --socket")
