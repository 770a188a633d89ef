"""Where the daemon's socket lives; the daemon and every client resolve it the same way."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

SOCKET_NAME = "enclaved.sock"


def default_socket_path() -> Path:
    """``$ENCLAVE_SOCKET``, else ``$XDG_RUNTIME_DIR/enclave/enclaved.sock``, else
    ``~/.local/state/enclave/enclaved.sock``."""
    explicit = os.environ.get("ENCLAVE_SOCKET")
    if explicit:
        return Path(explicit).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "enclave" / SOCKET_NAME
    return Path.home() / ".local" / "state" / "enclave" / SOCKET_NAME


def resolve_socket(arg: str | None) -> Path:
    return Path(arg).expanduser() if arg else default_socket_path()


def lock_path(socket_path: Path) -> Path:
    """The daemon's single-instance lock beside its socket, held while it runs (and starts)."""
    return socket_path.with_name(socket_path.name + ".lock")


def starting_pid(socket_path: Path) -> str | None:
    """The pid of a daemon that holds the socket's lock, or None when none does. A client that
    cannot connect uses this to say "enclaved is starting" rather than "not running"."""
    try:
        fd = os.open(lock_path(socket_path), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.read(fd, 32).decode(errors="replace").strip() or "?"
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
