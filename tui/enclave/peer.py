"""The client half of the peer handshake (the daemon half is ``enclaved.transport.peers``; the names both use are in ``enclave_contract.handshake``).

Before its first gRPC call a client connects to ``<socket>.peer``; the daemon reads the
client's pid and uid from the kernel and answers ``enclave-peer-v1 <token>``. The client
keeps that connection open for as long as it runs (closing it revokes the token) and sends
the token as ``x-enclave-peer`` metadata on every call, so the daemon's audit log names this
process.

The client checks who serves before it sends anything: the handshake server's uid (the
kernel's SO_PEERCRED) must be this user's or root's (or, for root, the socket folder's
owner), the gRPC socket must belong to that same uid, and the folder must be one that nobody
else can write (or sticky, like /tmp), so that nobody else can have put a socket of their own
in the daemon's place. A gRPC socket without its ``.peer`` socket is refused too. With no
daemon at all (neither socket answers), :func:`handshake` returns None and the gRPC call
says that nothing is running.

Sync channel::

    peer = handshake(socket_path)
    channel = grpc.insecure_channel(f"unix:{socket_path}")
    if peer:
        channel = grpc.intercept_channel(channel, *peer.interceptors())

grpc.aio channel::

    peer = handshake(socket_path)          # blocking, but short; fine before the app starts
    channel = grpc.aio.insecure_channel(f"unix:{socket_path}",
                                        interceptors=peer.aio_interceptors() if peer else None)

Call ``peer.close()`` when the client exits (or let the process exit: the kernel closes it).
"""

from __future__ import annotations

import collections
import os
import socket
import stat
import struct
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from enclave_contract.handshake import GREETING, MAX_GREETING_LINE, PEER_METADATA_KEY, peer_socket_path

HANDSHAKE_TIMEOUT = 5.0
_UCRED = struct.Struct("3i")  # struct ucred: pid_t pid, uid_t uid, gid_t gid

TokenSource = str | Callable[[], str | None]


class PeerHandshakeError(Exception):
    """The daemon's handshake socket is there but gave no token; a one-line message."""


class PeerSession:
    """An open handshake connection and its token. Keep it open for the life of the client."""

    def __init__(self, sock: socket.socket, token: str, path: Path) -> None:
        self._sock: socket.socket | None = sock
        self.token = token
        self.path = path

    def __repr__(self) -> str:  # never show the token
        return f"PeerSession(path={str(self.path)!r}, open={self._sock is not None})"

    @property
    def alive(self) -> bool:
        """False once closed here, or once the daemon closed its end (it stopped or restarted:
        the token is gone; make a new handshake)."""
        if self._sock is None:
            return False
        try:
            data = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return data != b""

    def close(self) -> None:
        """Close the handshake connection; the daemon revokes the token at once."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> PeerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def interceptors(self) -> list[Any]:
        """For ``grpc.intercept_channel(channel, *session.interceptors())``."""
        return [PeerTokenInterceptor(self.token)]

    def aio_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """For ``grpc.aio.insecure_channel(target, interceptors=session.aio_interceptors())``."""
        return aio_interceptors(self.token)


def handshake(socket_path: Path, timeout: float = HANDSHAKE_TIMEOUT) -> PeerSession | None:
    """Connect to the daemon's handshake socket, check who serves it, and read the token.

    Returns None when no daemon is there (the gRPC call then says so). Raises
    :class:`PeerHandshakeError` when something is there that is not this user's enclaved, or
    gives no token."""
    socket_path = Path(socket_path)
    path = peer_socket_path(socket_path)
    _check_folder(socket_path.parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            if isinstance(exc, FileNotFoundError) and _answers(socket_path):
                raise PeerHandshakeError(
                    f"{socket_path} answers but its handshake socket {path} is missing; "
                    "restart enclaved (or update it: this client needs the handshake)"
                ) from None
            return None
        _check_server(sock, socket_path)
        token = _read_token(sock, path)
        sock.settimeout(None)
    except PeerHandshakeError:
        sock.close()
        raise
    except TimeoutError:
        sock.close()
        raise PeerHandshakeError(f"enclaved did not answer the handshake on {path} within {timeout:g}s; is it stuck?") from None
    except OSError as exc:
        sock.close()
        raise PeerHandshakeError(
            f"cannot make the handshake with enclaved on {path} ({exc.strerror or exc}); check the socket's owner and mode"
        ) from None
    return PeerSession(sock, token, path)


def _check_folder(folder: Path) -> None:
    """Refuse a socket folder where another user could put a socket in the daemon's place."""
    try:
        st = folder.stat()
    except OSError:
        return  # no folder, no daemon: the gRPC call says so
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise PeerHandshakeError(
            f"the socket folder {folder} can be written by other users (mode {stat.S_IMODE(st.st_mode):04o}), "
            f"so the socket in it may not be enclaved's; run: chmod 700 {folder}"
        )


def _trusted_uids(folder: Path) -> set[int]:
    uids = {os.getuid(), 0}
    if os.getuid() == 0:  # root may talk to any user's daemon, in that user's own folder
        with suppress(OSError):
            uids.add(folder.stat().st_uid)
    return uids


def _check_server(sock: socket.socket, socket_path: Path) -> None:
    """The handshake server and the gRPC socket belong to this user (or root)."""
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    if uid not in _trusted_uids(socket_path.parent):
        raise PeerHandshakeError(
            f"the daemon at {socket_path} runs as uid {uid}, not as this user or root; "
            "this is not your enclaved: do not use it, and tell your operator"
        )
    with suppress(FileNotFoundError):  # not bound yet: the daemon is starting
        owner = socket_path.lstat().st_uid
        if owner != uid:
            raise PeerHandshakeError(
                f"{socket_path} belongs to uid {owner}, not to the daemon's uid {uid}; "
                "someone else's socket stands in its place: do not use it, and tell your operator"
            )


def _answers(socket_path: Path) -> bool:
    """Whether something listens on ``socket_path`` (a stale socket file refuses)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(socket_path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _read_token(sock: socket.socket, path: Path) -> str:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(MAX_GREETING_LINE)
        if not chunk:
            raise PeerHandshakeError(f"enclaved refused the handshake on {path}; the daemon log says why")
        line += chunk
        if len(line) > MAX_GREETING_LINE:
            raise PeerHandshakeError(f"{path} did not answer like enclaved; is it an enclaved socket?")
    parts = line.decode("ascii", "replace").split()
    if len(parts) != 2 or parts[0] != GREETING or not parts[1].isascii():
        raise PeerHandshakeError(f"{path} answered with an unknown handshake; update the client or the daemon")
    return parts[1]


# --- metadata ------------------------------------------------------------------------------


def _token(source: TokenSource) -> str | None:
    return source() if callable(source) else source


def _with_token(metadata: Any, token: str | None) -> list[tuple[str, Any]]:
    """The call's metadata without any earlier peer token, plus this one (if any)."""
    items = [(k, v) for k, v in (metadata or ()) if k != PEER_METADATA_KEY]
    if token:
        items.append((PEER_METADATA_KEY, token))
    return items


class _SyncDetails(
    collections.namedtuple("_SyncDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class PeerTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the peer token to every call of a sync channel. ``token`` is the token, or a
    callable returning the current one (None: send none), so a client can swap sessions
    after a reconnect without rebuilding the channel."""

    def __init__(self, token: TokenSource) -> None:
        self._source = token

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _SyncDetails(
            d.method,
            d.timeout,
            _with_token(d.metadata, _token(self._source)),
            d.credentials,
            getattr(d, "wait_for_ready", None),
            getattr(d, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


class _AioPeer:
    def __init__(self, token: TokenSource) -> None:
        self._source = token

    def _details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*_with_token(d.metadata, _token(self._source)))
        return grpc.aio.ClientCallDetails(d.method, d.timeout, metadata, d.credentials, d.wait_for_ready)


# grpc.aio files each interceptor under the first kind it is an instance of, so one class
# per kind.
class AioUnaryUnaryPeer(_AioPeer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class AioUnaryStreamPeer(_AioPeer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class AioStreamUnaryPeer(_AioPeer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class AioStreamStreamPeer(_AioPeer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def aio_interceptors(token: TokenSource) -> list[grpc.aio.ClientInterceptor]:
    """One grpc.aio interceptor per call kind, all adding ``token`` (or ``token()``)."""
    return [AioUnaryUnaryPeer(token), AioUnaryStreamPeer(token), AioStreamUnaryPeer(token), AioStreamStreamPeer(token)]
