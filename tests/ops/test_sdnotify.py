"""enclaved under ``Type=notify``: the sd_notify datagrams a real daemon sends to a real
AF_UNIX datagram socket the test binds, as systemd would (a path, and ``@name`` in the
abstract namespace)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enclave_contract.v1 import status_pb2
from enclaved.sdnotify import Notifier
from tests.helpers import Daemon, short_tmpdir

RECV_TIMEOUT = 30  # only ends a test that hangs


@pytest.fixture
def listener() -> Iterator[Callable[[str], tuple[socket.socket, str]]]:
    """Bind a datagram socket as systemd does; returns it and the NOTIFY_SOCKET value."""
    made: list[socket.socket] = []

    def bind(kind: str) -> tuple[socket.socket, str]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if kind == "abstract":
            name = f"enclave-test-{os.getpid()}-{len(made)}"
            sock.bind("\0" + name)
            value = "@" + name
        else:
            value = str(short_tmpdir() / "notify")
            sock.bind(value)
        sock.settimeout(RECV_TIMEOUT)
        made.append(sock)
        return sock, value

    yield bind
    for s in made:
        s.close()


def _next(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def _serves(d: Daemon) -> bool:
    snap = next(iter(d.stubs().status.Status(status_pb2.StatusRequest(once=True), timeout=10)))
    return bool(snap.version)


def test_ready_watchdog_and_stopping_on_a_path_socket(
    listener: Callable[[str], tuple[socket.socket, str]], daemon_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, value = listener("path")
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: pings every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    d = daemon_factory(wait=False)
    assert _next(sock) == "READY=1"
    assert _serves(d), "READY=1 must mean the socket answers"
    assert [_next(sock) for _ in range(3)] == ["WATCHDOG=1"] * 3
    d.proc.terminate()
    rest = []
    while not rest or rest[-1] == "WATCHDOG=1":
        rest.append(_next(sock))
    assert rest[-1] == "STOPPING=1"
    assert d.stop() == 0


def test_abstract_socket_and_a_watchdog_meant_for_another_pid(
    listener: Callable[[str], tuple[socket.socket, str]], daemon_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``@name`` is an abstract socket; a watchdog whose WATCHDOG_PID is not the daemon's is
    not its to ping (systemd sets it for the main process only)."""
    sock, value = listener("abstract")
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    d = daemon_factory(wait=False)
    assert _next(sock) == "READY=1"
    assert _serves(d)
    d.proc.terminate()
    assert _next(sock) == "STOPPING=1"  # and no WATCHDOG=1 before it
    assert d.stop() == 0


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_seconds is None
    assert n.notify("READY=1") is False


def test_a_notify_socket_that_is_gone_is_not_an_error(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_seconds == 4.0
    assert n.notify("READY=1") is False


@pytest.mark.parametrize("env", [{"NOTIFY_SOCKET": "relative/path"}, {"NOTIFY_SOCKET": ""}, {"WATCHDOG_USEC": "x"}, {"WATCHDOG_USEC": "0"}])
def test_values_that_are_not_systemds_are_ignored(env: dict[str, str]) -> None:
    n = Notifier(env)
    assert not n.enabled and n.watchdog_seconds is None


def test_a_daemon_the_workbench_starts_does_not_inherit_the_services_notify_socket(
    listener: Callable[[str], tuple[socket.socket, str]], monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    """A workbench run by a service (its NOTIFY_SOCKET set) starts enclaved: that daemon must
    not tell the service it is ready, nor feed its watchdog."""
    from enclave.spawn import spawn_daemon as spawn_from_workbench

    sock, value = listener("path")
    sock.settimeout(3)
    home = short_tmpdir()
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    spawned = spawn_from_workbench(home / "run" / "enclaved.sock", ("--models", str(model_dir), "--data", str(home / "data")))
    try:
        environ = Path(f"/proc/{spawned.pid}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_USEC=")) for v in environ)
        with pytest.raises(TimeoutError):
            sock.recv(4096)  # nothing reaches the service's socket
    finally:
        spawned.process.terminate()
        spawned.process.wait(20)
