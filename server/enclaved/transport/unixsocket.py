"""What the daemon's two Unix sockets (gRPC and the peer handshake) share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Files created meanwhile (a socket's, by bind) get ``~mask`` from the first instant."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
