"""The daemon's own limits: no core dumps, an open-file limit raised at start and split so that
a flood of clients is refused at the door while the audit log keeps writing, and a log that a
retrying client cannot fill."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from enclave_contract.handshake import peer_socket_path
from tests.helpers import SHARED_CONFIG, Daemon, chat, enclave, fds, wait_for

pytestmark = pytest.mark.timeout(180)


def limits(pid: int) -> dict[str, tuple[str, str]]:
    """/proc/PID/limits as {name: (soft, hard)}."""
    out = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        out[name] = (soft, hard)
    return out


def test_core_dumps_are_off_and_the_open_file_limit_is_raised(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(wrap=["prlimit", "--nofile=512:8192", "--core=unlimited"])
    got = limits(d.proc.pid)
    assert got["Max core file size"] == ("0", "0")
    assert got["Max open files"] == ("8192", "8192")
    assert d.stop() == 0


def test_an_operator_may_allow_core_dumps_for_debugging(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(wrap=["prlimit", "--core=unlimited"], extra=["--allow-core-dumps"])
    assert limits(d.proc.pid)["Max core file size"] == ("unlimited", "unlimited")
    assert d.stop() == 0


def test_a_flood_of_clients_is_refused_at_the_door_and_the_daemon_goes_on(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG, wrap=["prlimit", "--nofile=256:256"])
    fds_before = fds(d.proc.pid)
    held: list[socket.socket] = []
    try:
        for path in (peer_socket_path(d.socket), d.socket):
            for _ in range(400):  # far more than 256 descriptors' worth, idle and kept open
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                # the handshake socket accepts everyone (to turn them away): wait for it; the
                # gRPC one stops accepting at its cap, so a full backlog fails at once
                s.setblocking(path != d.socket)
                try:
                    s.connect(str(path))
                except OSError:
                    s.close()
                    continue
                held.append(s)
            if path != d.socket:
                wait_for(lambda: "peer refused" in d.log)  # the daemon got through them
        held_open = fds(d.proc.pid)
        assert held_open < 256 - 32, f"{held_open} descriptors open: the reserve for the audit log is gone"
        assert d.proc.poll() is None
    finally:
        for s in held:
            s.close()

    # everyone gone (once the daemon has seen them go): it serves, its audit log writes, and
    # the log stayed short
    wait_for(lambda: fds(d.proc.pid) < fds_before + 16)
    assert chat(d.stubs(), "a1", "after the flood")[-1].HasField("finished")
    r = enclave(d, "audit", "export", "--format", "jsonl", "--action", "access.denied")
    full = [json.loads(line) for line in r.stdout.splitlines() if "clients connected" in line]
    assert 1 <= len(full) <= 20, r.stdout[-2000:] + r.stderr + d.log[-3000:]  # at most one a second, with a count
    assert enclave(d, "audit", "verify").returncode == 0
    assert len(d.log.splitlines()) < 60, d.log[-3000:]
    assert "Traceback" not in d.log
