"""Proof of the air gap: enclaved and a whole chat (``enclave chat`` and the workbench) work in
a network namespace with no network, and a daemon without ``[http] listen`` and ``[[engines]]``
holds no AF_INET or AF_INET6 socket, whatever it was asked to do."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from enclave_contract.v1 import models_pb2, status_pb2
from tests.helpers import SHARED_CONFIG, Daemon, chat, enclave
from tests.ops.netns import inet_sockets, isolating_prefix, unix_sockets

ROOT = Path(__file__).resolve().parents[2]


def test_a_whole_session_runs_in_a_namespace_without_network(model_dir: Path) -> None:
    prefix = isolating_prefix()
    if prefix is None:
        pytest.skip("cannot make a network namespace here (unshare -n needs root, unshare -rn user namespaces)")
    r = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.ops.airgap_session", str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert r.returncode == 0 and "air gap: ok" in r.stdout, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"


def test_the_daemon_holds_no_inet_socket(daemon_factory: Callable[..., Daemon]) -> None:
    """After loading a model, chatting, listing and status (with clients still connected), every
    socket of the daemon is looked up in its namespace's inet tables."""
    d = daemon_factory(SHARED_CONFIG)
    stubs = d.stubs()
    assert any(e.HasField("finished") for e in chat(stubs, "a1", "hello"))
    stubs.models.ListModels(models_pb2.ListModelsRequest(), timeout=30)
    next(iter(stubs.status.Status(status_pb2.StatusRequest(once=True), timeout=30)))
    assert enclave(d, "chat", "a2", "hello again").returncode == 0
    assert unix_sockets(d.proc.pid), "the daemon's Unix sockets are seen (so the tables are read)"
    assert inet_sockets(d.proc.pid) == {}


@pytest.mark.parametrize("family, kind, table", [(socket.AF_INET, socket.SOCK_STREAM, "tcp"), (socket.AF_INET, socket.SOCK_DGRAM, "udp")])
def test_the_check_finds_an_inet_socket(family: int, kind: int, table: str) -> None:
    """The check can fail: a socket this process opens is found in its table."""
    import os

    with socket.socket(family, kind) as s:
        s.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            s.listen()
        # this process may hold others (an earlier test's HTTP client): look for this one
        assert os.fstat(s.fileno()).st_ino in inet_sockets(os.getpid()).get(table, set())


def test_the_check_finds_an_inet6_socket() -> None:
    import os

    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 here")
    with s:
        s.listen()
        assert os.fstat(s.fileno()).st_ino in inet_sockets(os.getpid()).get("tcp6", set())
