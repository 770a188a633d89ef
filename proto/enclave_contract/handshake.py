"""The peer handshake both sides speak (the daemon half is ``enclaved.transport.peers``, the
client half ``enclave.peer``).

Before its first gRPC call a client connects to ``<socket>.peer``; the daemon reads the
client's pid and uid from the kernel (SO_PEERCRED) and answers one line,
``enclave-peer-v1 <token>``. The client sends that token as ``x-enclave-peer`` metadata on
every call for as long as it keeps the handshake connection open.
"""

from __future__ import annotations

from pathlib import Path

PEER_METADATA_KEY = "x-enclave-peer"
GREETING = "enclave-peer-v1"
PEER_SUFFIX = ".peer"
MAX_GREETING_LINE = 256  # bytes, newline included: a longer answer is not a daemon's


def peer_socket_path(socket_path: Path) -> Path:
    """The handshake socket beside the gRPC one: ``enclaved.sock`` → ``enclaved.sock.peer``."""
    return socket_path.with_name(socket_path.name + PEER_SUFFIX)
