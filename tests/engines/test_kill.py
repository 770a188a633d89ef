"""A replica killed mid-stream: a real llama-cpp-python server of this test's own (not the
session's) gets SIGKILL after a remote turn's first tokens. The turn ends with one clear line
and its partial text kept, marked interrupted; the daemon keeps serving (a local agent still
answers); the next turn goes to the replica that survived (the session's server)."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, chat_pb2
from tests.engines.conftest import Servers, free_port, start_llama_server, wait_up
from tests.engines.test_remote import kinds, served, text, turn
from tests.helpers import REAL_MODELS, Daemon, chat, short_tmpdir, start_daemon


@pytest.fixture(scope="module")
def victim() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A llama-cpp-python server of this module's own, and its URL."""
    port, home = free_port(), short_tmpdir()
    proc = start_llama_server(port, home / "victim.log")
    try:
        wait_up(proc, port, home / "victim.log")
        yield proc, f"http://127.0.0.1:{port}/v1"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def daemon(servers: Servers, victim: tuple[subprocess.Popen[bytes], str]) -> Iterator[Daemon]:
    # the victim first: on a tie (both idle and healthy) the first replica takes the turn
    config = f"""
[[engines]]
name = "duo"
urls = ["{victim[1]}", "{servers.tcp_url}"]
models = ["smollm2"]
connect_timeout = "1s"
idle_timeout = "5s"
backoff = "50ms"
health_interval = "1s"

[[agents]]
name = "remote"
model = "smollm2@duo"
max_tokens = 96

[[agents]]
name = "local"
model = "smollm2"
max_tokens = 8

[[models]]
name = "smollm2"
n_ctx = 512
n_seq_max = 1
n_threads = 1
"""
    d = start_daemon(short_tmpdir(), REAL_MODELS, config)
    yield d
    assert d.stop() == 0
    assert "Traceback" not in d.log


def test_a_replica_killed_mid_stream_ends_the_turn_in_one_line_and_the_next_goes_to_the_survivor(
    daemon: Daemon, servers: Servers, victim: tuple[subprocess.Popen[bytes], str]
) -> None:
    proc, victim_url = victim
    stubs = daemon.stubs()
    stream = stubs.chat.Chat(chat_pb2.ChatRequest(agent="remote", message="Tell me a long story about a dragon."), timeout=90)
    events: list[chat_pb2.ChatEvent] = []
    code, error = None, ""
    try:
        for ev in stream:
            events.append(ev)
            if ev.HasField("served"):
                assert ev.served.replica == victim_url, "the first replica (the victim) takes the turn"
            if ev.HasField("delta") and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)  # after the first tokens
                proc.wait()
    except grpc.RpcError as exc:
        code, error = exc.code(), exc.details() or ""
    partial = text(events)
    assert proc.returncode == -signal.SIGKILL and partial
    assert code == grpc.StatusCode.UNAVAILABLE and "\n" not in error, error
    assert error.startswith(f"engine duo: the connection to {victim_url} broke") and "interrupted" in error
    transcript = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="remote"), timeout=10).messages
    assert transcript[-1].content == partial and transcript[-1].finish_reason == "interrupted"
    # the broken stream marks its replica unhealthy at once: the next turn need not find out again
    assert re.search(rf"engine duo replica {re.escape(victim_url)} is unhealthy: the connection broke \(\w+\)", daemon.log)

    local = chat(stubs, "local", "Hi.")  # the daemon keeps serving
    assert kinds(local)[-1] == "finished" and text(local)

    after = turn(daemon, "remote", "And then?")
    assert after.code is None and kinds(after.events)[-1] == "finished", after.error
    assert served(after.events).replica == servers.tcp_url and text(after.events)
