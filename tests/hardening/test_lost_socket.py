"""A socket removed under the running daemon: it notices, says so in one line and stops (a
daemon nobody can reach would hold its lock forever), keeping every conversation; the next
start serves again. A data folder left open to others is tightened."""

from __future__ import annotations

import stat
from collections.abc import Callable

import pytest

from enclave_contract.handshake import peer_socket_path
from tests.helpers import SHARED_CONFIG, Daemon, chat, enclave, short_tmpdir

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("which", ["grpc", "peer"])
def test_a_daemon_whose_socket_was_removed_stops_and_a_new_one_serves(which: str, daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    assert chat(d.stubs(), "a1", "remember this")[-1].HasField("finished")
    (d.socket if which == "grpc" else peer_socket_path(d.socket)).unlink()
    assert d.proc.wait(timeout=30) == 1
    assert d.log.count("was removed or replaced while enclaved ran") == 1 and "Traceback" not in d.log

    again = daemon_factory(SHARED_CONFIG, home=d.home)
    r = enclave(again, "agents")
    assert r.returncode == 0 and "a1" in r.stdout
    assert chat(again.stubs(), "a1", "still there?")[-1].HasField("finished")


def test_a_data_folder_open_to_others_is_made_private(daemon_factory: Callable[..., Daemon]) -> None:
    home = short_tmpdir()
    (home / "data").mkdir(mode=0o755)
    (home / "data").chmod(0o755)
    d = daemon_factory(home=home)
    assert stat.S_IMODE((home / "data").stat().st_mode) == 0o700
    assert "made it 0700" in d.log
