"""Who is calling: a small credential handshake beside the gRPC socket.

gRPC does not tell a server the uid or pid of a Unix-socket client (grpc/grpc#28755), so the
daemon listens on a second socket, ``<socket>.peer``, in the same 0700 folder. A client
connects to it first; the daemon reads the client's credentials from the kernel
(``SO_PEERCRED``: pid, uid, gid as of ``connect()``), records ``client.connect``, and answers
one line, ``enclave-peer-v1 <token>\\n``. The client keeps that connection open and sends the
token as ``x-enclave-peer`` metadata on every gRPC call; the daemon maps it back to the
kernel-reported identity with :meth:`PeerRegistry.actor`. The token is revoked the moment
the connection closes (the client exits, is killed, or closes it) or the daemon stops, so a
token lives exactly as long as the client process that holds the handshake connection.

What this proves, and what it does not: the pid and uid are what the kernel saw at
``connect()`` on the handshake socket, not on the gRPC connection itself. A process that
holds the token (the client, or something of the same user that can read its memory) can
make calls under that identity; a process of another user cannot connect at all (both
sockets are 0600 in a 0700 folder), and the uid check below refuses anyone but the daemon's
own user or root even if those modes were loosened. A call without a token is taken as the
socket owner's only while the gRPC socket is private (``unixsocket.is_private``): once an
operator loosens the modes, such calls are refused like an unknown token. Tokens are never
logged.

Handshakes are capped in total and per uid (so the daemon's user and root cannot lock each
other out), below the daemon's file-descriptor budget; refusals for a full house are recorded
at most once a second per uid, with how many were refused since.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclave_contract.handshake import GREETING, PEER_METADATA_KEY, peer_socket_path
from enclave_contract.limits import MAX_SOCKET_PATH
from enclaved.audit.records import Actor
from enclaved.audit.records import user_name as account_name
from enclaved.domain.throttle import Throttle
from enclaved.errors import ConfigError, EnclaveError
from enclaved.transport.unixsocket import is_private, umask

log = logging.getLogger("enclaved.peers")

TOKEN_BYTES = 32  # 256 bits
MAX_PEERS = 1024  # open handshake connections at once; more are refused
FULL_DENIAL_INTERVAL = 1.0  # seconds between recorded "too many clients" refusals per uid
CLOSE_GRACE_SECONDS = 2.0
ACCEPT_RETRY_SECONDS = 0.5  # after a failed accept (out of descriptors)
_UCRED = struct.Struct("3i")  # struct ucred: pid_t pid, uid_t uid, gid_t gid

OnConnect = Callable[[Actor], Awaitable[object]]  # e.g. recorder.record(...), whose int is ignored
OnDenied = Callable[[Actor, str], Awaitable[object]]


class PeerDenied(EnclaveError):
    """A gRPC call carried a peer token the daemon does not know (revoked, from an earlier
    daemon, or made up). The caller records ``access.denied`` and aborts with this code.
    ``actor`` is the most the daemon knows about the caller: only that it could open the
    0600 socket (auth "socket-owner", pid None); record the denial under it."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str, actor: Actor | None = None) -> None:
        super().__init__(message)
        self.actor = actor


def user_name(uid: int) -> str:
    """The account name for ``uid``, or the uid as text when the passwd database has none."""
    return account_name(uid) or str(uid)


@dataclass(frozen=True)
class PeerInfo:
    """One live handshake: the kernel's view of the client at ``connect()``."""

    actor: Actor
    gid: int


class PeerRegistry:
    """Issues a token per handshake connection and maps tokens back to actors.

    ``on_connect(actor)`` is awaited before the token is sent; if it raises (e.g. the audit
    log cannot record ``client.connect``), the connection is closed without a token (fail
    closed). ``on_denied(actor, reason)`` is awaited when a peer is refused (wrong uid, too
    many peers, or ``on_connect`` failed); its errors are logged and otherwise ignored.

    ``require_peer=True`` makes a call without a token an error too (see :meth:`actor`).
    """

    def __init__(
        self,
        *,
        on_connect: OnConnect | None = None,
        on_denied: OnDenied | None = None,
        require_peer: bool = False,
        max_peers: int = MAX_PEERS,
        max_peers_per_uid: int | None = None,
    ) -> None:
        self.on_connect = on_connect
        self.on_denied = on_denied
        self.require_peer = require_peer
        self.max_peers = max_peers
        self.max_peers_per_uid = max_peers_per_uid or max_peers
        self.uid = os.getuid()
        self.user = user_name(self.uid)
        self.path: Path | None = None
        self._server: asyncio.Task[None] | None = None  # the accept loop
        self._inode: tuple[int, int] | None = None
        self._sessions: dict[str, PeerInfo] = {}
        self._conns: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._per_uid: dict[int, int] = {}
        self._full_denials = Throttle(FULL_DENIAL_INTERVAL)  # per uid
        self._grpc_socket: Path | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, socket_path: Path) -> Path:
        """Listen on ``peer_socket_path(socket_path)``, created 0600 from the first instant;
        returns that path. The folder must already exist (``unixsocket.prepare_socket_dir``);
        a stale socket file there is replaced, anything else is a ConfigError."""
        if self._server is not None:
            raise RuntimeError("PeerRegistry already started")
        path = peer_socket_path(socket_path)
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            raise ConfigError(f"peer socket path {path} is longer than {MAX_SOCKET_PATH} bytes; choose a shorter --socket")
        with suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise ConfigError(f"{path} exists and is not a socket; remove it or choose another --socket")
            path.unlink()  # left by a daemon that died; the caller holds the instance lock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with umask(0o177):  # bind() creates the file with the umask: 0600 at once
                sock.bind(str(path))
            os.chmod(path, 0o600)
            st = path.lstat()
            self._inode = (st.st_dev, st.st_ino)
            sock.listen(64)
            sock.setblocking(False)
            self._server = asyncio.create_task(self._accept(sock), name="peer-handshake")
        except BaseException:
            sock.close()
            self._unlink(path)
            raise
        self.path = path
        self._grpc_socket = socket_path
        self._closing = False
        log.info("peer handshake listening on %s", path)
        return path

    async def close(self) -> None:
        """Stop listening, revoke every token, close every handshake connection, remove the
        socket file. Safe to call twice."""
        self._closing = True
        self._sessions.clear()
        if self._server is not None:
            self._server.cancel()
        for writer in list(self._conns.values()):
            writer.close()
        tasks = list(self._conns)
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_GRACE_SECONDS)
            for t in tasks:
                t.cancel()
        if self._server is not None:
            with suppress(BaseException):
                await self._server
            self._server = None
        if self.path is not None:
            self._unlink(self.path)
            self.path = None

    def _unlink(self, path: Path) -> None:
        """Remove the socket file only if it is still the one we bound."""
        with suppress(OSError):
            st = path.lstat()
            if self._inode is None or (st.st_dev, st.st_ino) == self._inode:
                path.unlink()
        self._inode = None

    # --- lookups -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Live tokens (clients holding a handshake connection)."""
        return len(self._sessions)

    def peers(self) -> list[PeerInfo]:
        return list(self._sessions.values())

    def actor(self, metadata: Iterable[tuple[str, Any]] | None) -> Actor:
        """The actor for a gRPC call, from its invocation metadata.

        * ``x-enclave-peer: <live token>`` → ``Actor(auth="peercred", user, uid, pid)`` as
          the kernel reported them at the client's handshake.
        * no token (a client older than the handshake, grpcurl…) → ``Actor(auth=
          "socket-owner", user=<daemon user>, uid=<daemon uid>, pid=None)``. This is the
          best the daemon can say: the gRPC socket is 0600 in a 0700 folder, so only the
          daemon's own user (or root) can connect at all, but which process did is unknown.
          With ``require_peer=True`` this is refused like an unknown token instead.
        * an unknown or revoked token, or more than one → :class:`PeerDenied`
          (UNAUTHENTICATED); the caller records ``access.denied``.
        """
        owner = Actor(auth="socket-owner", user=self.user, uid=self.uid, pid=None)
        tokens = [v for k, v in (metadata or ()) if k.lower() == PEER_METADATA_KEY]
        if not tokens:
            if self.require_peer:
                raise PeerDenied("this call has no peer token; connect with a current enclave client (it makes the peer handshake)", owner)
            if self._grpc_socket is not None and not is_private(self._grpc_socket):
                raise PeerDenied(
                    f"this call has no peer token and {self._grpc_socket} is open to other users; "
                    f"run: chmod 600 {self._grpc_socket}, or connect with the enclave client",
                    Actor(auth="unverified", user=None, uid=None, pid=None),
                )
            return owner
        if len(tokens) > 1:
            raise PeerDenied("this call carries more than one peer token; send one x-enclave-peer value (reconnect the client)", owner)
        token = tokens[0]
        if isinstance(token, bytes):
            token = token.decode("ascii", "replace")
        info = self._sessions.get(token)
        if info is None:
            raise PeerDenied(
                "the peer token is unknown or expired (the daemon restarted or the handshake closed); reconnect the client", owner
            )
        return info.actor

    # --- the handshake -------------------------------------------------------------------

    async def _accept(self, listener: socket.socket) -> None:
        """Accept one connection at a time, so that the handshakes in progress never hold more
        than ``max_peers`` descriptors (plus the one being turned away). A full house is closed
        at once; a failed accept (EMFILE) is retried a moment later, logged once."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    conn, _ = await loop.sock_accept(listener)
                except OSError as exc:
                    log.error("peer handshake: cannot accept a connection (%s); retrying", exc.strerror or exc)
                    await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                    continue
                if len(self._conns) >= self.max_peers:
                    actor, _ = self._credentials(conn)
                    conn.close()
                    if actor is not None:
                        self._later(self._deny(actor, f"more than {self.max_peers} clients are connected", full=True))
                    continue
                try:
                    reader, writer = await asyncio.open_unix_connection(sock=conn)
                except OSError:
                    conn.close()
                    continue
                task = asyncio.create_task(self._handle(reader, writer))
                self._conns[task] = writer  # counted from now, not from when the task first runs
        finally:
            listener.close()

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        token: str | None = None
        uid: int | None = None
        try:
            actor, gid = self._credentials(writer.get_extra_info("socket"))
            if actor is None:
                return
            refusal = self._refusal(actor)
            if refusal is not None:
                await self._deny(actor, *refusal)
                return
            assert actor.uid is not None
            uid = actor.uid
            self._per_uid[uid] = self._per_uid.get(uid, 0) + 1
            if self.on_connect is not None:
                try:
                    await self.on_connect(actor)
                except Exception:
                    log.exception("client.connect hook failed for pid %s; refusing the peer", actor.pid)
                    await self._deny(actor, "the daemon could not record the connection")
                    return
            if self._closing:
                return
            token = secrets.token_urlsafe(TOKEN_BYTES)
            self._sessions[token] = PeerInfo(actor, gid)  # registered before the client can use it
            writer.write(f"{GREETING} {token}\n".encode())
            await writer.drain()
            log.info("peer connected: user %s uid %s pid %s", actor.user, actor.uid, actor.pid)
            while await reader.read(256):  # the client sends nothing; wait for EOF
                pass
            log.info("peer disconnected: pid %s", actor.pid)
        except (ConnectionError, OSError):
            pass
        finally:
            if token is not None:
                self._sessions.pop(token, None)
            if uid is not None:
                self._per_uid[uid] -= 1
            self._conns.pop(task, None)
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()

    def _credentials(self, sock: Any) -> tuple[Actor | None, int]:
        try:
            pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        except (OSError, struct.error, AttributeError):
            log.warning("peer handshake: could not read SO_PEERCRED; closing the connection")
            return None, -1
        # pid 0: the peer is in a pid namespace this daemon cannot see into.
        return Actor(auth="peercred", user=user_name(uid), uid=uid, pid=pid or None), gid

    def _refusal(self, actor: Actor) -> tuple[str, bool] | None:
        """Why ``actor`` is refused, and whether it is for a full house; None to accept."""
        if self._closing:
            return "the daemon is shutting down", False
        if actor.uid not in (self.uid, 0):
            return f"uid {actor.uid} is neither the daemon's user ({self.uid}) nor root", False
        if self._per_uid.get(actor.uid, 0) >= self.max_peers_per_uid:
            return f"uid {actor.uid} has {self.max_peers_per_uid} clients connected, the most one user may", True
        return None

    async def _deny(self, actor: Actor, reason: str, full: bool = False) -> None:
        if full:
            suppressed = self._full_denials.admit(actor.uid)
            if suppressed is None:
                return
            if suppressed:
                reason = f"{reason} ({suppressed} more refused in the last second, not recorded one by one)"
        log.warning("peer refused: user %s uid %s pid %s: %s", actor.user, actor.uid, actor.pid, reason)
        if self.on_denied is not None:
            try:
                await self.on_denied(actor, reason)
            except Exception:
                log.exception("access.denied hook failed for pid %s", actor.pid)
