"""Where the daemon's socket lives; the daemon and every client resolve it the same way."""

from __future__ import annotations

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
