"""Another local user against the sockets: she cannot stand in for the daemon, and loosened
modes do not let her calls through. Each case runs a real second Unix user."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from enclave.peer import PeerHandshakeError, handshake
from enclave_contract.handshake import peer_socket_path
from enclave_contract.v1 import agents_pb2, agents_pb2_grpc
from enclaved.transport.peers import PeerRegistry
from tests.hardening.conftest import Stranger
from tests.helpers import BIN, MARKER, Daemon, enclave, short_tmpdir

pytestmark = pytest.mark.timeout(120)

# A stranger's stand-in: binds the gRPC socket (and the handshake socket, unless told not
# to), answers the handshake like enclaved, and reports every byte a client sends it.
IMPOSTOR = """
import os, select, socket, sys
sock, with_peer = sys.argv[1], sys.argv[2] == "1"
# DROP
listeners = []
for path in ([sock + ".peer"] if with_peer else []) + [sock]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen()
    listeners.append(s)
print("ready", flush=True)
conns = []
while True:
    ready, _, _ = select.select(listeners + conns, [], [])
    for r in ready:
        if r in listeners:
            c, _ = r.accept()
            if r is listeners[0] and with_peer:
                c.sendall(b"enclave-peer-v1 " + b"t" * 43 + b"\\n")
            conns.append(c)
        else:
            data = r.recv(65536)
            if data:
                print("got", len(data), flush=True)
            else:
                conns.remove(r)
"""


@pytest.fixture
def public_dir() -> Iterator[Path]:
    d = short_tmpdir()
    os.chmod(d, 0o1777)  # like /tmp: anyone may create a name in it
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def impostor(stranger: Stranger, sock: Path, *, with_peer: bool = True) -> subprocess.Popen[str]:
    proc = subprocess.Popen(stranger.python(IMPOSTOR, str(sock), "1" if with_peer else "0"), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen[str]) -> str:
    proc.kill()
    out, _ = proc.communicate(timeout=10)
    return out


def test_the_client_refuses_a_daemon_run_by_another_user(stranger: Stranger, public_dir: Path) -> None:
    sock = public_dir / "enclaved.sock"
    fake = impostor(stranger, sock)
    try:
        r = subprocess.run(
            [str(BIN / "enclave"), "--socket", str(sock), "chat", "helper", f"for the real daemon {MARKER}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        received = stop(fake)
    assert r.returncode != 0
    assert f"runs as uid {stranger.uid}, not as this user or root" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "got" not in received  # not one byte of the message reached her


async def test_the_client_refuses_a_grpc_socket_that_another_user_put_in_place(stranger: Stranger, public_dir: Path) -> None:
    sock = public_dir / "enclaved.sock"
    registry = PeerRegistry()  # the real daemon's handshake socket...
    await registry.start(sock)
    fake = impostor(stranger, sock, with_peer=False)  # ...and her gRPC socket beside it
    try:
        with pytest.raises(PeerHandshakeError, match=f"belongs to uid {stranger.uid}, not to the daemon's uid 0"):
            await asyncio.to_thread(handshake, sock)
    finally:
        stop(fake)
        await registry.close()


def test_the_client_refuses_a_socket_folder_that_others_can_write() -> None:
    folder = short_tmpdir()
    os.chmod(folder, 0o777)
    with pytest.raises(PeerHandshakeError, match=f"chmod 700 {folder}"):
        handshake(folder / "enclaved.sock")


def test_a_grpc_socket_without_its_handshake_socket_is_an_error_not_a_silent_fallback() -> None:
    sock = short_tmpdir() / "enclaved.sock"
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(sock))
    listening.listen()
    try:
        with pytest.raises(PeerHandshakeError, match=r"handshake socket .* is missing"):
            handshake(sock)
    finally:
        listening.close()
    assert handshake(sock) is None  # a stale socket file, nothing listening: no daemon
    assert not peer_socket_path(sock).exists()


@pytest.mark.parametrize("case", ["writable", "foreign"])
def test_the_daemon_refuses_a_socket_folder_another_user_could_swap(
    case: str, stranger: Stranger, model_dir: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    home = short_tmpdir()
    folder = home / "run"
    folder.mkdir(mode=0o700)
    if case == "writable":
        os.chmod(folder, 0o777)
        expected = f"run: chmod 700 {folder}"
    else:
        os.chown(folder, stranger.uid, stranger.gid)
        expected = f"belongs to uid {stranger.uid}"
    d = daemon_factory(home=home, wait=False)
    assert d.proc.wait(timeout=60) == 2
    assert expected in d.log and d.log.count("\n") == 1, d.log
    assert not (folder / "enclaved.sock").exists()


TOKENLESS_CALL = """
import sys, grpc
from enclave_contract.v1 import agents_pb2, agents_pb2_grpc
# DROP
with grpc.insecure_channel("unix:" + sys.argv[1]) as ch:
    try:
        agents_pb2_grpc.AgentsStub(ch).ListAgents(agents_pb2.ListAgentsRequest(), timeout=10)
        print("answered")
    except grpc.RpcError as err:
        print(err.code().name, err.details())
"""


def test_calls_without_a_token_are_refused_once_the_socket_is_open_to_others(
    stranger: Stranger, daemon_factory: Callable[..., Daemon]
) -> None:
    d = daemon_factory()
    os.chmod(d.home, 0o711)
    os.chmod(d.socket.parent, 0o711)  # an operator loosens the modes
    os.chmod(d.socket, 0o666)
    cmd = [sys.executable, *stranger.python(TOKENLESS_CALL, str(d.socket))[1:]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("UNAUTHENTICATED") and f"chmod 600 {d.socket}" in r.stdout, r.stdout + r.stderr

    # the same from the daemon's own user: a token-less call is no proof of who calls now
    with pytest.raises(grpc.RpcError) as err:
        agents_pb2_grpc.AgentsStub(d.channel()).ListAgents(agents_pb2.ListAgentsRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert enclave(d, "agents").returncode == 0  # the client's handshake still proves who it is

    os.chmod(d.socket, 0o600)
    agents_pb2_grpc.AgentsStub(d.channel()).ListAgents(agents_pb2.ListAgentsRequest(), timeout=10)
    r = enclave(d, "audit", "export", "--format", "jsonl", "--action", "access.denied")
    denied = [line for line in r.stdout.splitlines() if "unverified" in line]
    assert denied, r.stdout + r.stderr  # both refusals: one record, or two a second apart
    assert "Traceback" not in d.log
