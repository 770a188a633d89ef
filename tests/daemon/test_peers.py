"""The peer-credential handshake: real Unix sockets, real processes, a real gRPC server."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from enclave.peer import PEER_METADATA_KEY as CLIENT_KEY
from enclave.peer import PeerHandshakeError, PeerSession, handshake
from enclaved.audit import Actor
from enclaved.errors import ConfigError, EnclaveError
from enclaved.transport.peers import PEER_METADATA_KEY, PeerDenied, PeerRegistry, peer_socket_path

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(dir="/tmp", prefix="encp-"))
    os.chmod(d, 0o700)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Hooks:
    def __init__(self) -> None:
        self.connected: list[Actor] = []
        self.denied: list[tuple[Actor, str]] = []
        self.fail_connect = False

    async def on_connect(self, actor: Actor) -> None:
        if self.fail_connect:
            raise RuntimeError("audit log is down")
        self.connected.append(actor)

    async def on_denied(self, actor: Actor, reason: str) -> None:
        self.denied.append((actor, reason))


@pytest.fixture
async def registry(sock_dir: Path) -> AsyncIterator[tuple[PeerRegistry, Hooks, Path]]:
    hooks = Hooks()
    reg = PeerRegistry(on_connect=hooks.on_connect, on_denied=hooks.on_denied)
    sock = sock_dir / "enclaved.sock"
    await reg.start(sock)
    try:
        yield reg, hooks, sock
    finally:
        await reg.close()


async def shake(sock: Path) -> PeerSession:
    """The client handshake is blocking; run it off the loop that serves the daemon side."""
    session = await asyncio.to_thread(handshake, sock)
    assert session is not None
    return session


async def until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def md(token: str) -> list[tuple[str, str]]:
    return [("user-agent", "x"), (PEER_METADATA_KEY, token)]


# --- the handshake -------------------------------------------------------------------------


async def test_handshake_reports_this_process(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, hooks, sock = registry
    peer = peer_socket_path(sock)
    assert peer.name == "enclaved.sock.peer" and reg.path == peer
    assert stat.S_ISSOCK(peer.stat().st_mode) and stat.S_IMODE(peer.stat().st_mode) == 0o600
    assert CLIENT_KEY == PEER_METADATA_KEY

    session = await shake(sock)
    try:
        assert len(session.token) >= 32 and session.token not in repr(session)
        actor = reg.actor(md(session.token))
        assert actor == Actor(auth="peercred", user=ME, uid=os.getuid(), pid=os.getpid())
        assert hooks.connected == [actor] and hooks.denied == []
        assert session.alive
    finally:
        session.close()


async def test_tokens_are_distinct_per_connection(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, _, sock = registry
    a, b = await shake(sock), await shake(sock)
    try:
        assert a.token != b.token and len(reg) == 2
    finally:
        a.close()
        b.close()


async def test_token_revoked_when_client_closes(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, _, sock = registry
    session = await shake(sock)
    token = session.token
    assert reg.actor(md(token)).auth == "peercred"
    session.close()
    assert not session.alive
    await until(lambda: len(reg) == 0)
    with pytest.raises(PeerDenied) as exc:
        reg.actor(md(token))
    assert "reconnect" in exc.value.message


async def test_unknown_token_is_unauthenticated(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, _, _ = registry
    with pytest.raises(PeerDenied) as exc:
        reg.actor(md("made-up"))
    assert isinstance(exc.value, EnclaveError)
    assert exc.value.code == "UNAUTHENTICATED" and grpc.StatusCode[exc.value.code] == grpc.StatusCode.UNAUTHENTICATED
    assert "\n" not in exc.value.message and "reconnect" in exc.value.message
    assert "made-up" not in exc.value.message
    assert exc.value.actor == Actor(auth="socket-owner", user=ME, uid=os.getuid(), pid=None)


async def test_two_tokens_are_refused(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, _, sock = registry
    session = await shake(sock)
    try:
        with pytest.raises(PeerDenied):
            reg.actor([(PEER_METADATA_KEY, session.token), (PEER_METADATA_KEY, session.token)])
    finally:
        session.close()


async def test_no_token_is_socket_owner(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, _, _ = registry
    owner = Actor(auth="socket-owner", user=ME, uid=os.getuid(), pid=None)
    assert reg.actor([("user-agent", "grpcurl")]) == owner
    assert reg.actor(()) == owner and reg.actor(None) == owner


async def test_require_peer_refuses_calls_without_token(sock_dir: Path) -> None:
    reg = PeerRegistry(require_peer=True)
    await reg.start(sock_dir / "s")
    try:
        with pytest.raises(PeerDenied):
            reg.actor([])
        session = await shake(sock_dir / "s")
        assert reg.actor(md(session.token)).pid == os.getpid()
        session.close()
    finally:
        await reg.close()


async def test_failed_connect_hook_gives_no_token(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, hooks, sock = registry
    hooks.fail_connect = True
    with pytest.raises(PeerHandshakeError, match="refused"):
        await asyncio.to_thread(handshake, sock)
    assert len(reg) == 0 and hooks.connected == []
    await until(lambda: len(hooks.denied) == 1)
    actor, reason = hooks.denied[0]
    assert actor.pid == os.getpid() and "record" in reason


async def test_close_revokes_and_removes_socket(sock_dir: Path) -> None:
    reg = PeerRegistry()
    sock = sock_dir / "enclaved.sock"
    await reg.start(sock)
    session = await shake(sock)
    token = session.token
    await reg.close()
    assert len(reg) == 0 and not peer_socket_path(sock).exists()
    with pytest.raises(PeerDenied):
        reg.actor(md(token))
    await until(lambda: not session.alive)  # the client can tell the daemon went away
    session.close()
    await reg.close()  # twice is fine


async def test_no_peer_socket_means_no_session(sock_dir: Path) -> None:
    assert await asyncio.to_thread(handshake, sock_dir / "enclaved.sock") is None


async def test_stale_socket_replaced_other_file_refused(sock_dir: Path) -> None:
    sock = sock_dir / "enclaved.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(peer_socket_path(sock)))
    stale.close()
    reg = PeerRegistry()
    await reg.start(sock)
    session = await shake(sock)
    session.close()
    await reg.close()

    peer_socket_path(sock).write_text("not a socket")
    with pytest.raises(ConfigError, match="not a socket"):
        await PeerRegistry().start(sock)
    long = sock_dir / ("x" * 110)
    with pytest.raises(ConfigError, match="longer than"):
        await PeerRegistry().start(long)


# --- other processes -----------------------------------------------------------------------

CHILD = """
import sys
from pathlib import Path
from enclave.peer import handshake
s = handshake(Path(sys.argv[1]))
print(s.token, flush=True)
sys.stdin.read()
"""


async def test_subprocess_pid_and_revocation_on_kill(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, hooks, sock = registry
    with subprocess.Popen([sys.executable, "-c", CHILD, str(sock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)  # type: ignore[union-attr]
            token = line.decode().strip()
            actor = reg.actor(md(token))
            assert actor.pid == proc.pid != os.getpid()
            assert actor.uid == os.getuid() and actor.auth == "peercred"
            assert hooks.connected[-1] == actor
        finally:
            proc.kill()
            await asyncio.to_thread(proc.wait)
    await until(lambda: len(reg) == 0)  # killed: the kernel closed the connection
    with pytest.raises(PeerDenied):
        reg.actor(md(token))


DROP_AND_CONNECT = """
import os, socket, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
print(repr(s.recv(256)), flush=True)
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a peer under another uid")
async def test_other_uid_refused_even_if_modes_loosened(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, hooks, sock = registry
    peer = peer_socket_path(sock)
    os.chmod(sock.parent, 0o755)  # a misconfiguration: the uid check still holds
    os.chmod(peer, 0o666)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", DROP_AND_CONNECT, str(peer), stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert out.decode().strip() == "b''"  # closed without a token
    assert len(reg) == 0 and all(a.uid != 65534 for a in hooks.connected)
    await until(lambda: len(hooks.denied) == 1)
    actor, reason = hooks.denied[0]
    assert actor.uid == 65534 and actor.pid == proc.pid and actor.auth == "peercred"
    assert "neither" in reason


# --- a real gRPC round trip ----------------------------------------------------------------


def _ident(b: bytes) -> bytes:
    return b


@pytest.fixture
async def grpc_server(registry: tuple[PeerRegistry, Hooks, Path]) -> AsyncIterator[tuple[PeerRegistry, Path]]:
    reg, _, sock = registry

    def who(context: grpc.aio.ServicerContext) -> bytes:
        a = reg.actor(context.invocation_metadata())
        return json.dumps({"auth": a.auth, "user": a.user, "uid": a.uid, "pid": a.pid}).encode()

    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            return who(context)
        except PeerDenied as exc:
            await context.abort(grpc.StatusCode[exc.code], exc.message)

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        try:
            body = who(context)
        except PeerDenied as exc:
            await context.abort(grpc.StatusCode[exc.code], exc.message)
        for _ in range(2):
            yield body

    handler = grpc.method_handlers_generic_handler(
        "test.Peer",
        {
            "Who": grpc.unary_unary_rpc_method_handler(unary, _ident, _ident),
            "WhoStream": grpc.unary_stream_rpc_method_handler(stream, _ident, _ident),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    try:
        yield reg, sock
    finally:
        await server.stop(None)


def _sync_calls(sock: Path, session: PeerSession | None) -> list[dict[str, Any]]:
    with grpc.insecure_channel(f"unix:{sock}") as raw:
        channel = grpc.intercept_channel(raw, *session.interceptors()) if session else raw
        who = channel.unary_unary("/test.Peer/Who", _ident, _ident)
        who_stream = channel.unary_stream("/test.Peer/WhoStream", _ident, _ident)
        out = [json.loads(who(b"", timeout=10))]
        out += [json.loads(m) for m in who_stream(b"", timeout=10)]
        return out


async def _aio_calls(sock: Path, session: PeerSession | None) -> list[dict[str, Any]]:
    interceptors = session.aio_interceptors() if session else None
    async with grpc.aio.insecure_channel(f"unix:{sock}", interceptors=interceptors) as channel:
        who = channel.unary_unary("/test.Peer/Who", _ident, _ident)
        who_stream = channel.unary_stream("/test.Peer/WhoStream", _ident, _ident)
        out = [json.loads(await who(b"", timeout=10, metadata=((PEER_METADATA_KEY, "stale"), ("x-other", "1"))))]
        out += [json.loads(m) async for m in who_stream(b"", timeout=10)]
        return out


async def test_grpc_round_trip_sync_and_aio(grpc_server: tuple[PeerRegistry, Path]) -> None:
    reg, sock = grpc_server
    session = await shake(sock)
    mine = {"auth": "peercred", "user": ME, "uid": os.getuid(), "pid": os.getpid()}
    try:
        assert await asyncio.to_thread(_sync_calls, sock, session) == [mine] * 3
        assert await _aio_calls(sock, session) == [mine] * 3  # the interceptor's token wins
    finally:
        session.close()

    owner = {"auth": "socket-owner", "user": ME, "uid": os.getuid(), "pid": None}
    assert await asyncio.to_thread(_sync_calls, sock, None) == [owner] * 3

    await until(lambda: len(reg) == 0)
    with pytest.raises(grpc.RpcError) as sync_err:
        await asyncio.to_thread(_sync_calls, sock, session)  # revoked token
    assert sync_err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "reconnect" in sync_err.value.details()  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as aio_err:
        await _aio_calls(sock, session)
    assert aio_err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_sees_subprocess_pid(grpc_server: tuple[PeerRegistry, Path]) -> None:
    """A whole client in another process: handshake plus aio calls through the interceptors."""
    _, sock = grpc_server
    child = """
import asyncio, sys, grpc, grpc.aio
from pathlib import Path
from enclave.peer import handshake
async def main():
    s = handshake(Path(sys.argv[1]))
    async with grpc.aio.insecure_channel("unix:" + sys.argv[1], interceptors=s.aio_interceptors()) as ch:
        print((await ch.unary_unary("/test.Peer/Who")(b"", timeout=10)).decode(), flush=True)
    s.close()
asyncio.run(main())
"""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", child, str(sock), stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    got = json.loads(out)
    assert got["pid"] == proc.pid and got["auth"] == "peercred" and got["uid"] == os.getuid()


async def test_too_many_peers_refused(sock_dir: Path) -> None:
    hooks = Hooks()
    reg = PeerRegistry(on_denied=hooks.on_denied, max_peers=1)
    await reg.start(sock_dir / "s")
    try:
        first = await shake(sock_dir / "s")
        with pytest.raises(PeerHandshakeError):
            await asyncio.to_thread(handshake, sock_dir / "s")
        await until(lambda: len(hooks.denied) == 1)
        assert "more than 1" in hooks.denied[0][1] and len(reg) == 1
        first.close()
        await until(lambda: len(reg) == 0)
        (await shake(sock_dir / "s")).close()  # room again
    finally:
        await reg.close()


async def test_no_token_is_refused_once_the_socket_is_open_to_others(registry: tuple[PeerRegistry, Hooks, Path]) -> None:
    reg, _, sock = registry
    sock.touch(mode=0o600)  # the gRPC socket's place (the registry itself binds only .peer)
    os.chmod(sock.parent, 0o711)
    assert reg.actor(()).auth == "socket-owner"  # the socket itself is still 0600
    os.chmod(sock, 0o666)
    with pytest.raises(PeerDenied, match=f"chmod 600 {sock}"):
        reg.actor(())
    os.chmod(sock.parent, 0o700)
    assert reg.actor(()).auth == "socket-owner"
