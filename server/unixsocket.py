"""What the daemon's two Unix sockets (gRPC and the peer handshake) share."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, with the terminating NUL


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Files created meanwhile (a socket's, by bind) get ``~mask`` from the first instant."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
