"""Every chat.request record gets exactly one outcome: in the normal path even when the
caller's deadline cuts in while the request is being recorded, and after kill -9 the next
start records chat.abandoned for each turn that was cut off."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from collections.abc import Callable

import grpc
import pytest

from enclave_contract.v1 import chat_pb2
from tests.helpers import Daemon, chat, enclave, wait_for

pytestmark = pytest.mark.timeout(180)

OUTCOMES = ("chat.completion", "chat.cancel", "chat.error", "chat.abandoned")

CONFIG = """
[[models]]
name = "tiny"
n_ctx = 4096
n_seq_max = 2
n_threads = 2

[[agents]]
name = "long"
model = "tiny"
max_tokens = 4000
seed = 1

[[agents]]
name = "short"
model = "tiny"
max_tokens = 4
seed = 2
"""


def chat_records(d: Daemon) -> list[dict[str, object]]:
    r = enclave(d, "audit", "export", "--format", "jsonl", "--action", "chat.*")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def outcomes_per_request(records: list[dict[str, object]]) -> dict[object, Counter[object]]:
    requests = {r["turn"] for r in records if r["action"] == "chat.request"}
    return {turn: Counter(r["action"] for r in records if r["turn"] == turn and r["action"] in OUTCOMES) for turn in requests}


def test_requests_cut_off_by_tiny_deadlines_still_get_one_outcome(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(CONFIG)
    stub = d.stubs().chat
    for i in range(40):
        try:
            list(stub.Chat(chat_pb2.ChatRequest(agent="short", message=f"hurry {i}"), timeout=0.002 + i * 0.001))
        except grpc.RpcError as err:
            assert err.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), err
    assert chat(d.stubs(), "short", "and now slowly")[-1].HasField("finished")
    per_request = outcomes_per_request(chat_records(d))
    assert len(per_request) >= 1
    assert all(sum(c.values()) == 1 for c in per_request.values()), per_request


def test_after_kill_9_the_next_start_records_chat_abandoned_for_the_cut_off_turn(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(CONFIG)
    assert chat(d.stubs(), "short", "before")[-1].HasField("finished")
    first_delta = threading.Event()

    def talk() -> None:
        try:
            for ev in d.stubs().chat.Chat(chat_pb2.ChatRequest(agent="long", message="a long story", detach=True), timeout=60):
                if ev.HasField("delta"):
                    first_delta.set()
        except grpc.RpcError:
            pass  # the daemon is killed under it

    talker = threading.Thread(target=talk)
    talker.start()
    assert first_delta.wait(30)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=30)
    talker.join(30)

    again = daemon_factory(CONFIG, home=d.home)
    records = chat_records(again)
    abandoned = [r for r in records if r["action"] == "chat.abandoned"]
    assert len(abandoned) == 1 and abandoned[0]["agent"] == "long" and abandoned[0]["outcome"] == "error"
    assert all(sum(c.values()) == 1 for c in outcomes_per_request(records).values())

    again.stop()  # a clean stop and start abandon nothing more
    third = daemon_factory(CONFIG, home=d.home)
    wait_for(lambda: enclave(third, "agents").returncode == 0)
    assert [r for r in chat_records(third) if r["action"] == "chat.abandoned"] == abandoned
